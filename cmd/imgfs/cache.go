package main

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/imgfs/imgfs/cache"
)

// defaultCacheMaxSize is the size the cache is pruned to after each mount is ready (mount --cache-max-size).
const defaultCacheMaxSize = "10GiB"

func cacheFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "cache-dir", Usage: "where layer indexes are kept (default: $XDG_CACHE_HOME/imgfs)", EnvVars: []string{"IMGFS_CACHE_DIR"}},
		&cli.BoolFlag{Name: "json", Usage: "print JSON"},
	}
}

func cacheCommand() *cli.Command {
	return &cli.Command{
		Name:  "cache",
		Usage: "list or prune the layer index cache",
		Description: "The cache holds, per layer (blob digest and diff_id), its member table, its stream's restart\n" +
			"points or decompressed copy and the records of its verification. Keys in use by a live mount or\n" +
			"command are never pruned.",
		Subcommands: []*cli.Command{
			{
				Name:      "ls",
				Usage:     "list the cached keys, oldest last use first",
				ArgsUsage: " ",
				Flags:     cacheFlags(),
				Action:    runCacheLs,
			},
			{
				Name:      "prune",
				Usage:     "remove whole cached keys not in use, oldest last use first",
				ArgsUsage: " ",
				Flags: append(cacheFlags(),
					&cli.StringFlag{Name: "max-size", Usage: "remove the oldest keys until the cache holds at most `SIZE` (e.g. 10GiB, 500M)"},
					&cli.StringFlag{Name: "older-than", Usage: "remove keys last used more than `DUR` ago (e.g. 72h, 30d)"},
					&cli.BoolFlag{Name: "all", Usage: "remove every key not in use"},
				),
				Action: runCachePrune,
			},
		},
	}
}

func runCacheLs(c *cli.Context) error {
	if c.NArg() != 0 {
		return usageError(c, "want no arguments, got %d", c.NArg())
	}
	dir := cacheDir(c)
	es, err := cache.List(dir)
	if err != nil {
		return err
	}
	if c.Bool("json") {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(struct {
			CacheDir string        `json:"cacheDir"`
			Entries  []cache.Entry `json:"entries"`
		}{dir, es})
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "DIGEST\tDIFF_ID\tTABLE\tSTREAM\tOTHER\tLAST USE\tIN USE\tARCHIVES")
	var total int64
	for _, e := range es {
		total += e.Size
		inUse := "-"
		if e.InUse {
			inUse = "yes"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", shortDigest(e.Digest), shortDigest(e.DiffID),
			humanBytes(e.Table), humanBytes(e.Stream), humanBytes(e.Other), e.LastUse.Local().Format("2006-01-02 15:04"),
			inUse, strings.Join(e.Archives, ", "))
	}
	w.Flush()
	fmt.Printf("%d key(s), %s in %s\n", len(es), humanBytes(total), dir)
	return nil
}

func shortDigest(d string) string {
	if d == "" {
		return "-"
	}
	if len(d) > 7+12 {
		return d[:7+12]
	}
	return d
}

func runCachePrune(c *cli.Context) error {
	if c.NArg() != 0 {
		return usageError(c, "want no arguments, got %d", c.NArg())
	}
	var opts cache.PruneOptions
	opts.All = c.Bool("all")
	if s := c.String("max-size"); s != "" {
		n, err := parseSize(s)
		if err != nil {
			return usageError(c, "--max-size: %v", err)
		}
		if n == 0 {
			opts.All = true
		}
		opts.MaxSize = n
	}
	if s := c.String("older-than"); s != "" {
		d, err := parseAge(s)
		if err != nil {
			return usageError(c, "--older-than: %v", err)
		}
		opts.OlderThan = d
	}
	if !opts.All && opts.MaxSize == 0 && opts.OlderThan == 0 {
		return usageError(c, "say what to remove: --max-size, --older-than or --all")
	}
	dir := cacheDir(c)
	res, err := cache.Prune(dir, opts)
	if c.Bool("json") {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		if jerr := enc.Encode(res); jerr != nil && err == nil {
			err = jerr
		}
	} else {
		fmt.Printf("removed %d key(s), %s; %d in use kept; %s left in %s\n", len(res.Removed),
			humanBytes(res.RemovedBytes), len(res.Busy), humanBytes(res.Remaining), dir)
	}
	if err != nil {
		return fmt.Errorf("cache prune %s: %w", dir, err)
	}
	return nil
}

// pruneAfterMount prunes the cache down to limit (mount --cache-max-size; 0 disables) in the
// background; the mount's own keys are held and so kept.
func pruneAfterMount(dir, limit string, log *slog.Logger) {
	n, err := parseSize(limit)
	if err != nil || n == 0 {
		return // checked at flag parsing; 0 is off
	}
	go func() {
		res, err := cache.Prune(dir, cache.PruneOptions{MaxSize: n})
		if err != nil {
			log.Warn("cache: prune after mount", "dir", dir, "err", err)
			return
		}
		if len(res.Removed) > 0 {
			log.Info("cache: pruned after mount", "dir", dir, "removed", len(res.Removed), "bytes", res.RemovedBytes, "left", res.Remaining, "limit", n)
		}
	}()
}

// parseSize parses a byte count: a number with an optional unit, K/M/G/T (powers of 1024, with or
// without "i" and "B") or B.
func parseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	num := strings.TrimRightFunc(t, func(r rune) bool { return r < '0' || r > '9' })
	unit := strings.ToUpper(strings.TrimSpace(t[len(num):]))
	unit = strings.TrimSuffix(strings.TrimSuffix(unit, "B"), "I")
	mult := map[string]int64{"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}[unit]
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || mult == 0 || n < 0 || n > (1<<62)/mult {
		return 0, fmt.Errorf("size %q: want a number of bytes with an optional unit (K, M, G, T; e.g. 10GiB)", s)
	}
	return n * mult, nil
}

// parseAge parses a Go duration (72h, 90m) or a number of days (30d).
func parseAge(s string) (time.Duration, error) {
	if d, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.ParseInt(d, 10, 64)
		if err == nil && n >= 0 && n < 1<<20 {
			return time.Duration(n) * 24 * time.Hour, nil
		}
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("duration %q: want e.g. 72h or 30d", s)
	}
	return d, nil
}
