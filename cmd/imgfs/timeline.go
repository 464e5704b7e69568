package main

import (
	"fmt"
	"io"
	"os"

	"github.com/urfave/cli/v2"

	"github.com/imgfs/imgfs/evidence"
	"github.com/imgfs/imgfs/index"
)

func timelineCommand() *cli.Command {
	return &cli.Command{
		Name:      "timeline",
		Usage:     "write a Sleuth Kit bodyfile of every member of every layer and the image's history (for mactime)",
		ArgsUsage: "ARCHIVE",
		Description: "Writes a bodyfile 3.x (MD5|name|inode|mode_as_string|UID|GID|size|atime|mtime|ctime|crtime): one\n" +
			"line per tar member of every layer (inode \"L-N\": layer L, member N), whited-out and replaced\n" +
			"members marked \"(deleted)\" or \"(deleted-realloc)\" as fls marks them, whiteout markers too, then\n" +
			"one line per history entry of the config (inode \"0-N\"). Read it with `mactime -b FILE`.\n" +
			"Regular files are hashed (MD5) in the same pass; --no-md5 reads only the headers.",
		Flags: append(archiveFlags(),
			&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "write to `FILE` (atomically) instead of stdout"},
			&cli.BoolFlag{Name: "no-md5", Usage: "do not hash regular files: MD5 fields are 0"},
		),
		Action: runTimeline,
	}
}

func runTimeline(c *cli.Context) error {
	if c.NArg() != 1 {
		return usageError(c, "want ARCHIVE")
	}
	arc := c.Args().First()
	log := newLogger(c)
	o, err := openImage(c.Context, c, arc, log)
	if err != nil {
		return err
	}
	defer o.Close()
	view, closeView, err := o.view("", log)
	if err != nil {
		return err
	}
	defer closeView()
	var w io.Writer = os.Stdout
	var file *atomicFile
	if out := c.String("output"); out != "" && out != "-" {
		if file, err = createAtomic(out, log); err != nil {
			return err
		}
		defer file.Abort()
		w = file
	}
	pr := newProgress(c.Bool("quiet"), "timeline", len(o.layers))
	opts := evidence.TimelineOptions{NoMD5: c.Bool("no-md5")}
	if pr.enabled {
		opts.Progress = func(layer int, members int64) {
			if slot := pr.slot(layer); slot != nil {
				slot(index.Progress{Entries: members})
			}
		}
	}
	st, err := evidence.WriteTimeline(c.Context, w, evidence.Layered{Desc: o.img, Layers: o.layers, View: view}, opts)
	pr.done()
	if err != nil {
		return fmt.Errorf("timeline %s: %w", arc, err)
	}
	if file != nil {
		if err := file.Commit(); err != nil {
			return err
		}
	}
	log.Info("timeline written", "members", st.Members, "deleted", st.Deleted, "realloc", st.Realloc, "history", st.History)
	return nil
}
