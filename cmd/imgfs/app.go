package main

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/urfave/cli/v2"
)

// version is set by the linker (-X main.version=...).
var version = "dev"

func newApp() *cli.App {
	app := &cli.App{
		Name:    "imgfs",
		Usage:   "mount container image archives as their merged root filesystem, nothing extracted",
		Version: readBuildInfo().String(),
		Description: "imgfs reads docker-save tarballs (legacy and Docker 25+), OCI image layouts and OCI archives,\n" +
			"plain or wrapped in gzip or zstd, indexes each layer once (the index is cached by digest) and serves the\n" +
			"image's merged root filesystem through FUSE straight from the archive's bytes. With --upper the mount\n" +
			"is writable, and commit turns its changes into a new image archive; export and import convert\n" +
			"between images and flat tarballs. No daemon, no container runtime.",
		HideHelpCommand:      true,
		EnableBashCompletion: false,
		Commands: []*cli.Command{
			withCustody(mountCommand()),
			withCustody(unmountCommand()),
			inspectCommand(),
			diffCommand(),
			withCustody(hashesCommand()),
			commitCommand(),
			withCustody(exportCommand()),
			importCommand(),
			custodyCommand(),
			whichCommand(),
			withCustody(timelineCommand()),
			withCustody(verifyCommand()),
			cacheCommand(),
		},
		ExitErrHandler: func(*cli.Context, error) {}, // main prints errors once
	}
	// A bad flag is a usage error: one line (not the help text on stdout), exit status 2.
	app.OnUsageError = onUsageError
	var walk func([]*cli.Command)
	walk = func(cs []*cli.Command) {
		for _, c := range cs {
			c.OnUsageError = onUsageError
			walk(c.Subcommands)
		}
	}
	walk(app.Commands)
	return app
}

func onUsageError(c *cli.Context, err error, _ bool) error {
	name := commandPath(c)
	if name == "" {
		return usageErr{fmt.Errorf("%w (see 'imgfs --help')", err)}
	}
	return usageErr{fmt.Errorf("%s: %w (see 'imgfs %s --help')", name, err, name)}
}

// Flags shared by every command that reads an archive.
func archiveFlags() []cli.Flag {
	return append([]cli.Flag{
		&cli.StringFlag{Name: "image", Aliases: []string{"i"}, Usage: "image to use: tag, full name or digest (default: the only one)"},
		&cli.StringFlag{Name: "platform", Usage: "platform `os/arch[/variant]` in multi-platform indexes (default: the host's)"},
		&cli.StringFlag{Name: "cache-dir", Usage: "where layer indexes are kept (default: $XDG_CACHE_HOME/imgfs)", EnvVars: []string{"IMGFS_CACHE_DIR"}},
		&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "no progress output"},
		&cli.BoolFlag{Name: "verbose", Aliases: []string{"v"}, Usage: "log what is done (info level)"},
		&cli.BoolFlag{Name: "debug", Usage: "log everything (debug level)"},
	}, registryFlags()...)
}

func defaultCacheDir() string {
	if d := os.Getenv("XDG_CACHE_HOME"); d != "" {
		return filepath.Join(d, "imgfs")
	}
	if home, err := os.UserHomeDir(); err == nil {
		return filepath.Join(home, ".cache", "imgfs")
	}
	return filepath.Join(os.TempDir(), "imgfs-cache")
}

func cacheDir(c *cli.Context) string {
	if d := c.String("cache-dir"); d != "" {
		return d
	}
	return defaultCacheDir()
}

// newLogger logs to stderr: warnings by default, more with --verbose or --debug.
func newLogger(c *cli.Context) *slog.Logger {
	level := slog.LevelWarn
	if c.Bool("verbose") {
		level = slog.LevelInfo
	}
	if c.Bool("debug") {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
}

// usageError reports a command used with the wrong arguments.
func usageError(c *cli.Context, format string, args ...any) error {
	for _, a := range c.Args().Slice() {
		if strings.HasPrefix(a, "-") && a != "-" {
			return usageErr{fmt.Errorf("%s: %s: flags such as %q must come before the arguments", c.Command.Name, fmt.Sprintf(format, args...), a)}
		}
	}
	return usageErr{fmt.Errorf("%s: %s (see 'imgfs %s --help')", c.Command.Name, fmt.Sprintf(format, args...), commandPath(c))}
}

// commandPath names c's command with its parents ("cache prune").
func commandPath(c *cli.Context) string {
	var names []string
	for _, l := range c.Lineage() {
		if l.Command != nil && l.Command.Name != "" && l.Command.Name != c.App.Name {
			names = append([]string{l.Command.Name}, names...)
		}
	}
	return strings.Join(names, " ")
}

func sortStrings(s []string) { slices.Sort(s) }
