package main

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/urfave/cli/v2"
	"golang.org/x/term"

	"github.com/imgfs/imgfs/compression"
	"github.com/imgfs/imgfs/export"
	"github.com/imgfs/imgfs/imagewrite"
	"github.com/imgfs/imgfs/index"
	"github.com/imgfs/imgfs/overlay"
)

func exportCommand() *cli.Command {
	return &cli.Command{
		Name:      "export",
		Usage:     "stream an image's merged filesystem as one flat tar (offline docker export)",
		ArgsUsage: "ARCHIVE...",
		Description: "Writes the merged view (whiteouts applied, hardlinks kept, xattrs as PAX records, ns mtimes,\n" +
			"numeric owners, sorted) straight from the layers' bytes. -o - or a pipe streams it; a file is written\n" +
			"atomically. With --upper the changes in an upper directory are included.",
		Flags: append(archiveFlags(),
			&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "output `FILE`, or - for stdout (default: stdout when it is not a terminal)"},
			&cli.StringFlag{Name: "compression", Value: "none", Usage: "none, gzip or zstd"},
			&cli.StringFlag{Name: "upper", Usage: "include the changes of this upper `DIR` (from mount --upper)"},
		),
		Action: runExport,
	}
}

func runExport(c *cli.Context) error {
	if c.NArg() < 1 {
		return usageError(c, "want ARCHIVE")
	}
	comp, err := imagewrite.ParseCompression(c.String("compression"))
	if err != nil {
		return fmt.Errorf("--compression: %w", err)
	}
	out := c.String("output")
	if out == "" {
		if term.IsTerminal(int(os.Stdout.Fd())) {
			return usageError(c, "refusing to write a tar to a terminal: give -o FILE or pipe the output")
		}
		out = "-"
	}
	upperDir := c.String("upper")
	if upperDir != "" {
		if err := checkUpperDir(upperDir); err != nil {
			return err
		}
	}
	log := newLogger(c)
	ctx := c.Context
	o, err := openStack(ctx, c, c.Args().Slice(), log, true)
	if err != nil {
		return err
	}
	defer o.Close()
	view, closeView, err := o.viewOf(upperDir, true, log)
	if err != nil {
		return err
	}
	defer closeView()

	var w io.Writer = os.Stdout
	var file *atomicFile
	if out != "-" {
		if file, err = createAtomic(out, log); err != nil {
			return err
		}
		defer file.Abort()
		w = file
	}
	pr := newProgress(c.Bool("quiet"), "exporting", 1) // draws only on a terminal
	slot := pr.slot(0)
	opts := export.Options{Logger: log}
	if file != nil {
		opts.Skip = ownOutputSkip(file.File.File)
	} else {
		opts.Skip = ownOutputSkip(os.Stdout)
	}
	if slot != nil {
		opts.Progress = func(entries, bytes int64) { slot(index.Progress{Entries: entries, Bytes: bytes}) }
	}
	err = exportTo(ctx, view, w, comp, opts)
	pr.done()
	if err != nil {
		return fmt.Errorf("export %s: %w", c.Args().First(), err)
	}
	if file != nil {
		if err := file.Commit(); err != nil {
			return err
		}
		custodyNoteOutput(c, out, log)
		return nil
	}
	custodyOf(c).Note("output", "-")
	return nil
}

func exportTo(ctx context.Context, view *overlay.View, w io.Writer, comp compression.Format, opts export.Options) error {
	if comp == compression.None {
		_, err := export.Write(ctx, view, w, opts)
		return err
	}
	cw, err := compression.NewWriter(ctx, w, comp)
	if err != nil {
		return err
	}
	if _, err := export.Write(ctx, view, cw, opts); err != nil {
		cw.Abort()
		return err
	}
	return cw.Close()
}
