package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/opencontainers/go-digest"
	"github.com/urfave/cli/v2"

	"github.com/imgfs/imgfs/evidence"
)

// imageDiffFlags are the flags diff takes for two archives.
func imageDiffFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "image-a", Usage: "image of ARCHIVE_A to compare (default: --image, or ARCHIVE_A@REF)"},
		&cli.StringFlag{Name: "image-b", Usage: "image of ARCHIVE_B to compare (default: --image, or ARCHIVE_B@REF)"},
	}
}

// imageDiffDescription is what diff's help says of the two-archive form.
const imageDiffDescription = "\n\nWith two archives and no --upper, lists what changed from image A to image B, the same way: A, C or D\n" +
	"and the path, sorted, a deleted directory once (not its children), the parents of a change as C. A file\n" +
	"is changed when its type, mode, owner, size, mtime, content (sha256), link target, device or xattrs differ\n" +
	"(directories: not size or mtime). Layers both images share are not read. A@REF (or --image-a/--image-b)\n" +
	"picks an image of a multi-image archive; both may be the same archive. New or changed setuid, setgid and\n" +
	"executable files are flagged (on stderr; in --json, per change, with old and new sha256, mode, owner,\n" +
	"size, link and layer). Exit status as diff(1): 0 no differences, 1 differences, 2 trouble."

// splitArchiveRef splits "ARCHIVE@REF" when ARCHIVE is a path that exists and arg itself is not.
func splitArchiveRef(arg string) (string, string) {
	if _, err := os.Stat(arg); err == nil {
		return arg, ""
	}
	for i := 0; i < len(arg); i++ {
		if arg[i] != '@' {
			continue
		}
		if _, err := os.Stat(arg[:i]); err == nil {
			return arg[:i], arg[i+1:]
		}
	}
	return arg, ""
}

// imageDiffSide describes one image in diff --json.
type imageDiffSide struct {
	Archive        string          `json:"archive"`
	Names          []string        `json:"names"`
	ManifestDigest digest.Digest   `json:"manifestDigest"`
	ConfigDigest   digest.Digest   `json:"configDigest"`
	DiffIDs        []digest.Digest `json:"diffIDs"`
}

// runImageDiff is diff ARCHIVE_A ARCHIVE_B. Its errors are printed here and exit with 2 (diff(1)'s
// "trouble"), since 1 means "different".
func runImageDiff(c *cli.Context) error {
	err := imageDiff(c)
	var ex exitError
	if err == nil || errors.As(err, &ex) {
		return err
	}
	fmt.Fprintf(os.Stderr, "imgfs: %v\n", err)
	return exitError{code: 2}
}

func imageDiff(c *cli.Context) error {
	log := newLogger(c)
	ctx := c.Context
	var sides [2]evidence.Image
	var info [2]imageDiffSide
	for i, flag := range []string{"image-a", "image-b"} {
		path, ref := splitArchiveRef(c.Args().Get(i))
		if r := c.String(flag); r != "" {
			if ref != "" {
				return usageError(c, "%s: both @%s and --%s given", c.Args().Get(i), ref, flag)
			}
			ref = r
		}
		if ref == "" {
			ref = c.String("image")
		}
		o, err := openImageRef(ctx, c, path, ref, log, true)
		if err != nil {
			return err
		}
		defer o.Close()
		v, closeView, err := o.view("", log)
		if err != nil {
			return err
		}
		defer closeView()
		sides[i] = evidence.Image{View: v}
		for _, l := range o.img.Layers {
			sides[i].DiffIDs = append(sides[i].DiffIDs, l.DiffID)
		}
		info[i] = imageDiffSide{Archive: path, Names: o.img.Names, ManifestDigest: o.img.ManifestDigest,
			ConfigDigest: o.img.ConfigDigest, DiffIDs: sides[i].DiffIDs}
	}
	asJSON := c.Bool("json")
	changes, err := evidence.Diff(ctx, sides[0], sides[1], evidence.DiffOptions{Hash: asJSON})
	if err != nil {
		return fmt.Errorf("diff %s %s: %w", c.Args().Get(0), c.Args().Get(1), err)
	}
	if asJSON {
		type summary struct {
			Added   int `json:"added"`
			Changed int `json:"changed"`
			Deleted int `json:"deleted"`
			Flagged int `json:"flagged"`
		}
		var s summary
		for _, ch := range changes {
			switch ch.Kind {
			case evidence.Added:
				s.Added++
			case evidence.Changed:
				s.Changed++
			case evidence.Deleted:
				s.Deleted++
			}
			if len(ch.Flags) > 0 {
				s.Flagged++
			}
		}
		if changes == nil {
			changes = []evidence.Change{}
		}
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(struct {
			A       imageDiffSide     `json:"imageA"`
			B       imageDiffSide     `json:"imageB"`
			Summary summary           `json:"summary"`
			Changes []evidence.Change `json:"changes"`
		}{info[0], info[1], s, changes}); err != nil {
			return err
		}
	} else {
		w := newLineWriter(os.Stdout)
		for _, ch := range changes {
			w.line(ch.String())
		}
		if err := w.flush(); err != nil {
			return err
		}
		if !c.Bool("quiet") {
			printFlagged(os.Stderr, changes)
		}
	}
	if len(changes) > 0 {
		return exitError{code: 1}
	}
	return nil
}

// printFlagged lists the flagged changes for a reader of the text output.
func printFlagged(w io.Writer, changes []evidence.Change) {
	for _, ch := range changes {
		if len(ch.Flags) > 0 {
			fmt.Fprintf(w, "imgfs: diff: flagged %s: %s\n", strings.Join(ch.Flags, ","), ch.String())
		}
	}
}

// lineWriter buffers lines for stdout.
type lineWriter struct {
	w   io.Writer
	buf []byte
	err error
}

func newLineWriter(w io.Writer) *lineWriter { return &lineWriter{w: w} }

func (l *lineWriter) line(s string) {
	l.buf = append(append(l.buf, s...), '\n')
	if len(l.buf) >= 64<<10 {
		l.flush()
	}
}

func (l *lineWriter) flush() error {
	if l.err == nil && len(l.buf) > 0 {
		_, l.err = l.w.Write(l.buf)
	}
	l.buf = l.buf[:0]
	return l.err
}
