package main

import (
	"archive/tar"
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/imgfs/imgfs/compression"
	"github.com/imgfs/imgfs/imagewrite"
	"github.com/imgfs/imgfs/index"
)

func importCommand() *cli.Command {
	return &cli.Command{
		Name:      "import",
		Usage:     "turn a flat tarball into a one-layer image archive (offline docker import)",
		ArgsUsage: "FLAT.tar[.gz|.zst] | -",
		Description: "The tarball (from a file or stdin, plain, gzip or zstd) becomes the image's only layer, byte for\n" +
			"byte, compressed as asked in the same pass that hashes it. Members that would leave the root ('..') or\n" +
			"whiteouts ('.wh.*': a flat tarball has nothing below it to delete) are refused. SOURCE_DATE_EPOCH sets\n" +
			"the creation time.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "output archive `OUT` (required)"},
			&cli.StringSliceFlag{Name: "tag", Aliases: []string{"t"}, Usage: "`NAME:TAG` of the image (repeatable)"},
			&cli.StringFlag{Name: "message", Aliases: []string{"m"}, Usage: "history comment"},
			&cli.StringSliceFlag{Name: "change", Aliases: []string{"c"}, Usage: "Dockerfile instruction to apply (CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, USER, VOLUME, WORKDIR, STOPSIGNAL, ...)"},
			&cli.StringFlag{Name: "format", Value: "docker-archive", Usage: "docker-archive, oci (a layout directory) or oci-archive"},
			&cli.StringFlag{Name: "compression", Value: "gzip", Usage: "compression of the layer: gzip, zstd or none"},
			&cli.StringFlag{Name: "platform", Usage: "`os/arch[/variant]` of the image (default: the host's)"},
			&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "no progress output"},
			&cli.BoolFlag{Name: "verbose", Aliases: []string{"v"}, Usage: "log what is done (info level)"},
			&cli.BoolFlag{Name: "debug", Usage: "log everything (debug level)"},
		},
		Action: runImport,
	}
}

func runImport(c *cli.Context) error {
	if c.NArg() != 1 {
		return usageError(c, "want FLAT.tar or -")
	}
	in, out := c.Args().First(), c.String("output")
	if out == "" {
		return usageError(c, "-o OUT is required")
	}
	format, err := imagewrite.ParseFormat(c.String("format"))
	if err != nil {
		return fmt.Errorf("--format: %w", err)
	}
	comp, err := imagewrite.ParseCompression(c.String("compression"))
	if err != nil {
		return fmt.Errorf("--compression: %w", err)
	}
	changes, err := parseChanges(c.StringSlice("change"))
	if err != nil {
		return err
	}
	platform, err := parsePlatform(c.String("platform"))
	if err != nil {
		return err
	}
	created, err := creationTime()
	if err != nil {
		return err
	}
	log := newLogger(c)

	var src io.Reader = os.Stdin
	name := "stdin"
	if in != "-" {
		f, err := os.Open(in)
		if err != nil {
			return fmt.Errorf("%s: %w", in, errors.Unwrap(err))
		}
		defer f.Close()
		src, name = f, in
	}
	tarStream, _, err := compression.NewReader(bufio.NewReaderSize(src, 1<<20))
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	defer tarStream.Close()

	pr := newProgress(c.Bool("quiet"), "importing", 1)
	slot := pr.slot(0)
	opts := imagewrite.Options{Format: format, Compression: comp, Tags: c.StringSlice("tag"), Logger: log}
	if slot != nil {
		opts.Progress = func(done, total int64) { slot(index.Progress{Bytes: done}) }
	}
	layer := imagewrite.Layer{Write: func(ctx context.Context, w io.Writer) error {
		return copyCheckedTar(ctx, w, tarStream, name)
	}}
	res, err := imagewrite.Write(c.Context, out, nil, []imagewrite.Layer{layer},
		imagewrite.Config{Comment: c.String("message"), Created: created, Changes: changes, Platform: platform}, opts)
	pr.done()
	if err != nil {
		return fmt.Errorf("import %s: %w", name, err)
	}
	fmt.Fprintln(os.Stdout, res.ConfigDigest)
	return nil
}

// copyCheckedTar copies a flat tar stream to w byte for byte while checking every member header: the
// stream must be a complete tar, no member may leave the root, and whiteouts are refused.
func copyCheckedTar(ctx context.Context, w io.Writer, r io.Reader, name string) error {
	tr := tar.NewReader(io.TeeReader(r, w))
	members := 0
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			if members == 0 { // also text shorter than one header block: not a truncated tar
				return fmt.Errorf("%s: not a tar archive (%v)", name, err)
			}
			if errors.Is(err, io.ErrUnexpectedEOF) {
				return fmt.Errorf("%s: truncated after %d members", name, members)
			}
			return fmt.Errorf("%s: after %d members: %w", name, members, err)
		}
		members++
		if err := checkMember(hdr); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		if _, err := io.Copy(io.Discard, tr); err != nil {
			if errors.Is(err, io.ErrUnexpectedEOF) {
				return fmt.Errorf("%s: truncated in member %q", name, hdr.Name)
			}
			return fmt.Errorf("%s: member %q: %w", name, hdr.Name, err)
		}
	}
	if members == 0 {
		return fmt.Errorf("%s: no members (an empty or non-tar input)", name)
	}
	// Whatever follows the end-of-archive marker (block padding) belongs to the layer too.
	if _, err := io.Copy(w, r); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

// checkMember refuses members an extractor would place outside the root, and whiteouts.
func checkMember(hdr *tar.Header) error {
	if leavesRoot(hdr.Name) {
		return fmt.Errorf("member %q leaves the root", hdr.Name)
	}
	if strings.HasPrefix(path.Base(path.Clean("/"+hdr.Name)), ".wh.") {
		return fmt.Errorf("member %q is a whiteout: a flat tarball has no layer below it to delete from", hdr.Name)
	}
	if hdr.Typeflag == tar.TypeLink && leavesRoot(hdr.Linkname) {
		return fmt.Errorf("hardlink %q -> %q leaves the root", hdr.Name, hdr.Linkname)
	}
	return nil
}

// leavesRoot reports whether name, relative to the root (a leading "/" counts as the root), climbs
// above it with "..".
func leavesRoot(name string) bool {
	depth := 0
	for _, part := range strings.Split(strings.TrimLeft(name, "/"), "/") {
		switch part {
		case "", ".":
		case "..":
			depth--
			if depth < 0 {
				return true
			}
		default:
			depth++
		}
	}
	return false
}

// parseChanges checks every --change line before any work starts.
func parseChanges(lines []string) ([]string, error) {
	for _, l := range lines {
		if _, err := imagewrite.ParseChange(l); err != nil {
			return nil, fmt.Errorf("--change %q: %w", l, err)
		}
	}
	return lines, nil
}

// maxTarTime is the latest modification time a ustar header holds (11 octal digits), which the
// archives' own members use.
const maxTarTime = 1<<33 - 1

// creationTime is SOURCE_DATE_EPOCH when set (reproducible builds), else now.
func creationTime() (time.Time, error) {
	s := os.Getenv("SOURCE_DATE_EPOCH")
	if s == "" {
		return time.Now().UTC().Truncate(time.Second), nil
	}
	var sec int64
	if _, err := fmt.Sscan(s, &sec); err != nil || sec < 0 {
		return time.Time{}, fmt.Errorf("SOURCE_DATE_EPOCH=%q: want seconds since 1970", s)
	}
	if sec > maxTarTime {
		return time.Time{}, fmt.Errorf("SOURCE_DATE_EPOCH=%s: out of range for a tar mtime (max %d, %s)", s, int64(maxTarTime),
			time.Unix(maxTarTime, 0).UTC().Format(time.RFC3339))
	}
	return time.Unix(sec, 0).UTC(), nil
}
