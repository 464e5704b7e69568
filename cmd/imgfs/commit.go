package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/imgfs/imgfs/archive"
	"github.com/imgfs/imgfs/imagewrite"
	"github.com/imgfs/imgfs/index"
	"github.com/imgfs/imgfs/layerdiff"
	"github.com/imgfs/imgfs/overlay"
)

func upperFlag() cli.Flag {
	return &cli.StringFlag{Name: "upper", Usage: "the upper `DIR` a writable mount wrote its changes to (required)"}
}

func diffCommand() *cli.Command {
	return &cli.Command{
		Name:      "diff",
		Usage:     "list what an upper directory changes in an image, or image B in image A (offline docker diff)",
		ArgsUsage: "--upper DIR ARCHIVE... | ARCHIVE_A ARCHIVE_B",
		Description: "One line per path: A (added), C (changed) or D (deleted), like docker diff; the parent of an\n" +
			"added or deleted path shows as C." + imageDiffDescription,
		Flags: append(append(archiveFlags(), &cli.StringFlag{Name: "upper", Usage: "the upper `DIR` a writable mount wrote its changes to (the one-archive form)"},
			&cli.BoolFlag{Name: "json", Usage: "print JSON"}), imageDiffFlags()...),
		Action: runDiff,
	}
}

func runDiff(c *cli.Context) error {
	if c.NArg() == 2 && c.String("upper") == "" {
		return runImageDiff(c)
	}
	if c.NArg() < 1 {
		return usageError(c, "want --upper DIR ARCHIVE..., or ARCHIVE_A ARCHIVE_B")
	}
	dir := c.String("upper")
	if dir == "" {
		return usageError(c, "--upper DIR is required to list an upper directory's changes (two archives without it compare the images)")
	}
	if err := checkUpperDir(dir); err != nil {
		return err
	}
	log := newLogger(c)
	o, err := openStack(c.Context, c, c.Args().Slice(), log, true)
	if err != nil {
		return err
	}
	defer o.Close()
	lower, err := o.lowerForUpper(dir, log)
	if err != nil {
		return err
	}
	changes, err := layerdiff.Changes(c.Context, lower, dir)
	if err != nil {
		return fmt.Errorf("diff %s: %w", dir, err)
	}
	if c.Bool("json") {
		type line struct {
			Path string `json:"path"`
			Kind string `json:"kind"`
		}
		out := make([]line, len(changes))
		for i, ch := range changes {
			out[i] = line{Path: ch.Path, Kind: ch.Kind.String()}
		}
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	for _, ch := range changes {
		fmt.Println(ch.String())
	}
	return nil
}

// lowerForUpper checks, without writing anything into dir, that a writable mount of this image made
// dir (its base record), and returns the read-only view of the image's layers that dir's changes
// apply to.
func (o *opened) lowerForUpper(dir string, log *slog.Logger) (*overlay.View, error) {
	up, err := overlay.OpenUpper(overlay.UpperOptions{Dir: dir, Base: o.baseID(), Logger: log, ReadOnly: true})
	if err != nil {
		return nil, err
	}
	up.Close()
	v, err := overlay.New(o.overlayLayers(), overlay.Options{Logger: log})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", o.name, err)
	}
	return v, nil
}

func commitCommand() *cli.Command {
	return &cli.Command{
		Name:      "commit",
		Usage:     "write an upper directory's changes as a new layer of a new image archive (offline docker commit)",
		ArgsUsage: "ARCHIVE...",
		Description: "Copies every layer of the image byte for byte, adds one layer made from the upper directory (OCI\n" +
			"whiteouts, deterministic order; none when the directory holds no change), and updates the config\n" +
			"and history like docker commit. A live mount of the directory is paused while it is read; an OUT\n" +
			"in that mount or in the directory is refused.\n" +
			"SOURCE_DATE_EPOCH makes the result reproducible. The output is written atomically.",
		Flags: append(archiveFlags(), upperFlag(),
			&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "output `OUT` (default: ARCHIVE's name with -commit added)"},
			&cli.StringFlag{Name: "format", Usage: "docker-archive, oci (a layout directory) or oci-archive (default: the input's)"},
			&cli.StringFlag{Name: "compression", Value: "gzip", Usage: "compression of the new layer: gzip, zstd or none"},
			&cli.StringSliceFlag{Name: "tag", Aliases: []string{"t"}, Usage: "`NAME:TAG` of the new image (repeatable)"},
			&cli.StringFlag{Name: "author", Aliases: []string{"a"}, Usage: "author of the change"},
			&cli.StringFlag{Name: "message", Aliases: []string{"m"}, Usage: "commit message (history comment)"},
			&cli.StringSliceFlag{Name: "change", Aliases: []string{"c"}, Usage: "Dockerfile instruction to apply (CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, USER, VOLUME, WORKDIR, STOPSIGNAL, ONBUILD, HEALTHCHECK)"},
			&cli.BoolFlag{Name: "pause", Aliases: []string{"p"}, Value: true, Usage: "pause a live mount's writes while committing"},
		),
		Action: runCommit,
	}
}

func runCommit(c *cli.Context) error {
	if c.NArg() < 1 {
		return usageError(c, "want ARCHIVE")
	}
	in, dir := c.Args().Get(c.NArg()-1), c.String("upper") // a stack's top names the output
	if dir == "" {
		return usageError(c, "--upper DIR is required")
	}
	if err := checkUpperDir(dir); err != nil {
		return err
	}
	changeLines, err := parseChanges(c.StringSlice("change"))
	if err != nil {
		return err
	}
	comp, err := imagewrite.ParseCompression(c.String("compression"))
	if err != nil {
		return fmt.Errorf("--compression: %w", err)
	}
	created, err := creationTime()
	if err != nil {
		return err
	}
	log := newLogger(c)
	ctx := c.Context
	o, err := openStack(ctx, c, c.Args().Slice(), log, true)
	if err != nil {
		return err
	}
	defer o.Close()
	format := imagewrite.Format(c.String("format"))
	if format == "" {
		format = defaultFormat(o.sourceFormat())
	} else if format, err = imagewrite.ParseFormat(string(format)); err != nil {
		return fmt.Errorf("--format: %w", err)
	}
	out := c.String("output")
	if out == "" {
		out = defaultCommitOutput(in, format)
	}
	lower, err := o.lowerForUpper(dir, log)
	if err != nil {
		return err
	}
	// What commit writes (the output and its temporary file beside it, the index cache, the log on
	// stderr) must lie neither in DIR nor in the mount it pauses. stdout is written after the pause.
	w := pauseWrites{stderr: true, paths: []pausePath{
		{"output " + out, filepath.Dir(out)}, {"index cache " + cacheDir(c), cacheDir(c)}}}
	if err := w.checkOutside(dir); err != nil {
		return err
	}
	release := func() {}
	if c.Bool("pause") {
		if release, err = pauseUpper(ctx, dir, w, log); err != nil {
			return err
		}
		defer release()
	}
	changes, err := layerdiff.Changes(ctx, lower, dir)
	if err != nil {
		return fmt.Errorf("commit %s: %w", dir, err)
	}
	var layers []imagewrite.Layer
	if len(changes) > 0 {
		lopts := layerdiff.Options{Logger: log}
		if os.Getenv("SOURCE_DATE_EPOCH") != "" {
			lopts.SourceDateEpoch = &created
		}
		layers = append(layers, imagewrite.Layer{Write: func(ctx context.Context, w io.Writer) error {
			_, err := layerdiff.Write(ctx, w, lower, dir, lopts)
			return err
		}})
	}
	pr := newProgress(c.Bool("quiet"), "committing", 1)
	slot := pr.slot(0)
	opts := imagewrite.Options{Format: format, Compression: comp, Tags: c.StringSlice("tag"), Logger: log}
	if slot != nil {
		opts.Progress = func(done, total int64) { slot(index.Progress{Bytes: done, Total: max(total, 0)}) }
	}
	cfg := imagewrite.Config{
		Author:    c.String("author"),
		Comment:   c.String("message"),
		CreatedBy: commitCreatedBy(c),
		Created:   created,
		Changes:   changeLines,
	}
	res, err := imagewrite.Write(ctx, out, o.img, layers, cfg, opts)
	release()
	pr.done()
	if err != nil {
		return fmt.Errorf("commit %s: %w", dir, err)
	}
	if !c.Bool("quiet") {
		fmt.Fprintf(os.Stderr, "wrote %s (%d change(s), %d layer(s))\n", out, len(changes), len(res.Layers))
	}
	fmt.Fprintln(os.Stdout, res.ConfigDigest)
	return nil
}

// defaultFormat is the output format that matches the input's.
func defaultFormat(f archive.Format) imagewrite.Format {
	switch f {
	case archive.FormatOCILayout:
		return imagewrite.FormatOCI
	case archive.FormatOCIArchive:
		return imagewrite.FormatOCIArchive
	}
	return imagewrite.FormatDockerArchive
}

// defaultCommitOutput names the output after the input: app.tar → app-commit.tar, dir → dir-commit.
func defaultCommitOutput(in string, f imagewrite.Format) string {
	base := strings.TrimSuffix(filepath.Clean(in), string(filepath.Separator))
	for _, ext := range []string{".tar.gz", ".tgz", ".tar.zst", ".tar"} {
		if strings.HasSuffix(base, ext) {
			base = strings.TrimSuffix(base, ext)
			break
		}
	}
	if f == imagewrite.FormatOCI {
		return base + "-commit"
	}
	return base + "-commit.tar"
}

func commitCreatedBy(c *cli.Context) string {
	s := "imgfs commit"
	for _, ch := range c.StringSlice("change") {
		s += " -c " + fmt.Sprintf("%q", ch)
	}
	return s
}
