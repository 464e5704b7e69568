package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	"github.com/imgfs/imgfs/evidence"
)

func whichCommand() *cli.Command {
	return &cli.Command{
		Name:      "which",
		Usage:     "show every layer that added, changed, hid or re-created a path, and the path in the merged view",
		ArgsUsage: "ARCHIVE PATH",
		Description: "PATH is a path in the image; its parent directories are resolved in the merged view (symlinks\n" +
			"followed inside the image, never on the host). Each layer's member is shown as stored, with its\n" +
			"header and data offsets in the uncompressed layer stream and the sha256 of a regular file's content.\n" +
			"Exit status 0 when some layer has PATH, 1 when none has it, 2 on any other error.",
		Flags: append(archiveFlags(), &cli.BoolFlag{Name: "json", Usage: "print JSON"}),
		Action: func(c *cli.Context) error {
			err := runWhich(c)
			if err == nil || errors.Is(err, errNotInAnyLayer) {
				return err
			}
			// As grep: 0 found, 1 not found, 2 trouble (usage, archive, layers).
			fmt.Fprintf(os.Stderr, "imgfs: %v\n", err)
			return exitError{2}
		},
	}
}

// errNotInAnyLayer marks which's "no layer has this path" (exit status 1).
var errNotInAnyLayer = evidence.ErrNotInAnyLayer

func runWhich(c *cli.Context) error {
	if c.NArg() != 2 {
		return usageError(c, "want ARCHIVE PATH")
	}
	arc, p := c.Args().Get(0), c.Args().Get(1)
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
	rep, err := evidence.Which(c.Context, evidence.Layered{Desc: o.img, Layers: o.layers, View: view}, p)
	notFound := errors.Is(err, evidence.ErrNotInAnyLayer)
	if err != nil && !notFound {
		return fmt.Errorf("which %s: %w", arc, err)
	}
	if c.Bool("json") {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return err
		}
	} else if !notFound {
		printWhich(os.Stdout, rep)
	}
	if notFound {
		return fmt.Errorf("which %s: %s: %w (not added, changed or whited out by any of the %d layers)",
			arc, rep.Resolved, errNotInAnyLayer, len(o.layers))
	}
	return nil
}

func printWhich(w io.Writer, rep *evidence.WhichReport) {
	fmt.Fprintf(w, "%s", rep.Path)
	if rep.Resolved != rep.Path {
		var via []string
		for _, h := range rep.Symlinks {
			via = append(via, h.Path+" -> "+h.Target)
		}
		fmt.Fprintf(w, " = %s (via %s)", rep.Resolved, strings.Join(via, ", "))
	}
	fmt.Fprintln(w)
	printWhichEvents(w, rep.Events)
	if len(rep.LiteralEvents) > 0 {
		fmt.Fprintf(w, "%s taken literally (no symlink followed):\n", rep.Path)
		printWhichEvents(w, rep.LiteralEvents)
	}
	f := rep.Final
	if !f.Present {
		fmt.Fprintf(w, "merged view: absent\n")
		return
	}
	owner := "implied in every layer"
	if f.Layer > 0 {
		owner = fmt.Sprintf("layer %d (%s)", f.Layer, short(f.Digest))
	}
	fmt.Fprintf(w, "merged view: present, %s %s %d:%d, %d bytes, %d link(s), from %s\n", f.Type, f.Mode, f.UID, f.GID,
		f.Size, f.Nlink, owner)
}

func printWhichEvents(w io.Writer, events []evidence.WhichEvent) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "LAYER\tDIGEST\tACTION\tMEMBER\tTYPE\tMODE\tUID:GID\tSIZE\tMTIME\tHEADER@\tDATA@\tSHA256")
	for _, e := range events {
		action := e.Action
		if e.Reason != "" {
			action += " (" + e.Reason + ")"
		}
		m := e.Member
		if m == nil {
			fmt.Fprintf(tw, "%d\t%s\t%s\t(opaque xattr)\t\t\t\t\t\t\t\t\n", e.Layer, short(e.Digest), action)
			continue
		}
		name, hdr, data := fmt.Sprintf("%q", m.Name), fmt.Sprint(m.HeaderOffset), fmt.Sprint(m.DataOffset)
		if m.Implied {
			name, hdr, data = "(implied by members below)", "-", "-"
		}
		typ := m.Type
		if m.LinkTarget != "" {
			typ += " -> " + m.LinkTarget
		}
		if m.Replaced > 0 {
			name += fmt.Sprintf(" (replaces %d earlier)", m.Replaced)
		}
		if m.Opaque {
			typ += " (opaque)"
		}
		if len(m.HardlinkedAs) > 0 {
			typ += " (also " + strings.Join(m.HardlinkedAs, ", ") + ")"
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%d:%d\t%d\t%s\t%s\t%s\t%s\n", e.Layer, short(e.Digest), action, name,
			typ, m.Mode, m.UID, m.GID, m.Size, m.Mtime, hdr, data, orDash(m.SHA256))
	}
	tw.Flush()
}
