package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/opencontainers/go-digest"
	ispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/urfave/cli/v2"

	"github.com/imgfs/imgfs/archive"
)

func inspectCommand() *cli.Command {
	return &cli.Command{
		Name:      "inspect",
		Usage:     "show an archive's images, layers, config and history (offline docker inspect/history)",
		ArgsUsage: "ARCHIVE...",
		Flags: append(archiveFlags(),
			&cli.BoolFlag{Name: "json", Usage: "print JSON"},
			&cli.BoolFlag{Name: "no-index", Usage: "do not index layers (no entry counts or uncompressed sizes)"},
		),
		Action: runInspect,
	}
}

// Inspection is what inspect prints, in JSON and as text.
type Inspection struct {
	ImgfsVersion buildInfo      `json:"imgfsVersion"` // the imgfs that wrote it (as --version)
	Archive      InspectArchive `json:"archive"`
	Images       []InspectRef   `json:"images"`
	Image        InspectImage   `json:"image"`
}

// InspectArchive describes the archive file.
type InspectArchive struct {
	Path        string `json:"path"`
	Format      string `json:"format"`
	Compression string `json:"compression"`
}

// InspectRef is one image found in the archive.
type InspectRef struct {
	Names          []string        `json:"names"`
	ManifestDigest digest.Digest   `json:"manifestDigest"`
	Platform       *ispec.Platform `json:"platform,omitempty"`
}

// InspectImage is the selected image.
type InspectImage struct {
	Names          []string          `json:"names"`
	ManifestDigest digest.Digest     `json:"manifestDigest"`
	ConfigDigest   digest.Digest     `json:"configDigest"`
	Platform       ispec.Platform    `json:"platform"`
	Created        *time.Time        `json:"created,omitempty"`
	Author         string            `json:"author,omitempty"`
	Config         ispec.ImageConfig `json:"config"`
	History        []ispec.History   `json:"history"`
	Layers         []InspectLayer    `json:"layers"`
	RawConfig      json.RawMessage   `json:"rawConfig,omitempty"`
	Annotations    map[string]string `json:"annotations,omitempty"`
}

// InspectLayer is one layer of the selected image.
type InspectLayer struct {
	Digest           digest.Digest `json:"digest"`
	DiffID           digest.Digest `json:"diffID"`
	MediaType        string        `json:"mediaType"`
	Size             int64         `json:"size"`
	Compression      string        `json:"compression,omitempty"`
	UncompressedSize int64         `json:"uncompressedSize,omitempty"`
	Entries          int64         `json:"entries,omitempty"`
	// Warnings are the members the index dropped or altered (the first 50); WarningCount counts all.
	Warnings     []string `json:"warnings,omitempty"`
	WarningCount int64    `json:"warningCount,omitempty"`
}

func runInspect(c *cli.Context) error {
	if c.NArg() < 1 {
		return usageError(c, "want ARCHIVE")
	}
	path := c.Args().First()
	log := newLogger(c)
	ctx := c.Context
	in := Inspection{ImgfsVersion: readBuildInfo()}
	o, err := openStack(ctx, c, c.Args().Slice(), log, !c.Bool("no-index"))
	if err != nil {
		return err
	}
	defer o.Close()
	arc, img := o.arc, o.img
	in.Image.Layers = make([]InspectLayer, len(img.Layers))
	for i, l := range o.layers {
		in.Image.Layers[i].Compression = l.Compression().String()
		in.Image.Layers[i].Entries = int64(l.Len())
		in.Image.Layers[i].UncompressedSize = l.Info().StreamSize
		ws, n := l.Warnings()
		for _, w := range ws {
			in.Image.Layers[i].Warnings = append(in.Image.Layers[i].Warnings, w.String())
		}
		in.Image.Layers[i].WarningCount = n
	}
	if arc != nil {
		in.Archive = InspectArchive{Path: path, Format: string(arc.Format()), Compression: arc.Compression().String()}
		for _, r := range arc.Images() {
			in.Images = append(in.Images, InspectRef{Names: r.Names, ManifestDigest: r.ManifestDigest, Platform: r.Platform})
		}
	} else {
		in.Archive = InspectArchive{Path: path, Format: "registry"}
		in.Images = []InspectRef{{Names: img.Names, ManifestDigest: img.ManifestDigest, Platform: &img.Platform}}
	}
	if c.NArg() > 1 {
		in.Archive = InspectArchive{Path: strings.Join(c.Args().Slice(), " + "), Format: "stack, bottom first"}
	}
	im := &in.Image
	im.Names = img.Names
	im.ManifestDigest = img.ManifestDigest
	im.ConfigDigest = img.ConfigDigest
	im.Platform = img.Platform
	im.Created = img.Config.Created
	im.Author = img.Config.Author
	im.Config = img.Config.Config
	im.History = img.Config.History
	im.Annotations = img.Manifest.Annotations
	for i, l := range img.Layers {
		il := &im.Layers[i]
		il.Digest, il.DiffID, il.MediaType, il.Size = l.Digest, l.DiffID, l.MediaType, l.Size
	}
	if c.Bool("json") {
		im.RawConfig = json.RawMessage(img.RawConfig)
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(&in)
	}
	printInspection(os.Stdout, &in)
	return nil
}

func printInspection(w io.Writer, in *Inspection) {
	im := &in.Image
	format := in.Archive.Format
	if format == string(archive.FormatPlainTar) {
		format = "plain tarball: one layer, config synthesized"
	}
	fmt.Fprintf(w, "Archive:     %s (%s", in.Archive.Path, format)
	if in.Archive.Compression != "" && in.Archive.Compression != "none" {
		fmt.Fprintf(w, ", %s", in.Archive.Compression)
	}
	fmt.Fprintln(w, ")")
	fmt.Fprintf(w, "Image:       %s\n", strings.Join(orNone(im.Names), ", "))
	fmt.Fprintf(w, "Manifest:    %s\n", im.ManifestDigest)
	fmt.Fprintf(w, "Image ID:    %s\n", im.ConfigDigest)
	fmt.Fprintf(w, "Platform:    %s\n", archive.FormatPlatform(im.Platform))
	if im.Created != nil {
		fmt.Fprintf(w, "Created:     %s\n", im.Created.UTC().Format(time.RFC3339))
	}
	if im.Author != "" {
		fmt.Fprintf(w, "Author:      %s\n", im.Author)
	}
	cfg := im.Config
	field := func(name string, v any, show bool) {
		if show {
			b, _ := json.Marshal(v)
			fmt.Fprintf(w, "  %-12s %s\n", name+":", b)
		}
	}
	fmt.Fprintln(w, "Config:")
	field("Entrypoint", cfg.Entrypoint, cfg.Entrypoint != nil)
	field("Cmd", cfg.Cmd, cfg.Cmd != nil)
	field("Env", cfg.Env, len(cfg.Env) > 0)
	field("WorkingDir", cfg.WorkingDir, cfg.WorkingDir != "")
	field("User", cfg.User, cfg.User != "")
	field("Exposed", keys(cfg.ExposedPorts), len(cfg.ExposedPorts) > 0)
	field("Volumes", keys(cfg.Volumes), len(cfg.Volumes) > 0)
	field("Labels", cfg.Labels, len(cfg.Labels) > 0)
	field("StopSignal", cfg.StopSignal, cfg.StopSignal != "")

	fmt.Fprintf(w, "Layers (%d):\n", len(im.Layers))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  #\tDIGEST\tDIFF ID\tMEDIA TYPE\tSIZE\tUNCOMPRESSED\tENTRIES")
	for i, l := range im.Layers {
		entries, usize := "-", "-"
		if l.Entries > 0 {
			entries, usize = commas(l.Entries), humanBytes(l.UncompressedSize)
		}
		fmt.Fprintf(tw, "  %d\t%s\t%s\t%s\t%s\t%s\t%s\n", i+1, short(l.Digest), short(l.DiffID), l.MediaType,
			humanBytes(l.Size), usize, entries)
	}
	tw.Flush()
	for i, l := range im.Layers {
		if l.WarningCount == 0 {
			continue
		}
		fmt.Fprintf(w, "Warnings of layer %d (%d):\n", i+1, l.WarningCount)
		for _, x := range l.Warnings {
			fmt.Fprintf(w, "  %s\n", x)
		}
		if more := l.WarningCount - int64(len(l.Warnings)); more > 0 {
			fmt.Fprintf(w, "  ... and %d more\n", more)
		}
	}

	fmt.Fprintf(w, "History (%d):\n", len(im.History))
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  CREATED\tCREATED BY\tCOMMENT\tLAYER")
	for _, h := range im.History {
		created := "-"
		if h.Created != nil {
			created = h.Created.UTC().Format(time.RFC3339)
		}
		layer := "yes"
		if h.EmptyLayer {
			layer = "no"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", created, trunc(h.CreatedBy, 60), trunc(h.Comment, 50), layer)
	}
	tw.Flush()
	if len(in.Images) > 1 {
		fmt.Fprintf(w, "Other images in this archive (select with --image or --platform):\n")
		for _, r := range in.Images {
			if r.ManifestDigest == im.ManifestDigest && (r.Platform == nil || archive.FormatPlatform(*r.Platform) == archive.FormatPlatform(im.Platform)) {
				continue
			}
			p := ""
			if r.Platform != nil {
				p = " [" + archive.FormatPlatform(*r.Platform) + "]"
			}
			fmt.Fprintf(w, "  %s %s%s\n", short(r.ManifestDigest), strings.Join(orNone(r.Names), ", "), p)
		}
	}
}

func short(d digest.Digest) string {
	s := string(d)
	if i := strings.IndexByte(s, ':'); i >= 0 && len(s) > i+13 {
		return s[:i+13]
	}
	return s
}

func trunc(s string, n int) string {
	s = strings.ReplaceAll(s, "\n", " ")
	if len(s) > n {
		return s[:n-1] + "…"
	}
	return s
}

func orNone(s []string) []string {
	if len(s) == 0 {
		return []string{"<none>"}
	}
	return s
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sortStrings(out)
	return out
}
