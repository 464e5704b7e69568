package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/imgfs/imgfs/evidence"
	"github.com/imgfs/imgfs/index"
)

func hashesCommand() *cli.Command {
	return &cli.Command{
		Name:      "hashes",
		Usage:     "write a hashdeep file (size, md5, sha256) of the image's files, from the layers' bytes",
		ArgsUsage: "ARCHIVE",
		Description: "Lists every regular file of the merged view (each hard-linked name) in hashdeep's format, hashed\n" +
			"from the members' bytes, several files at a time. Names are written under --root, so that hashdeep\n" +
			"audits a mount of the image:\n" +
			"  imgfs hashes --root /mnt/app -o app.hashdeep ARCHIVE; hashdeep -o f -a -k app.hashdeep -r /mnt/app\n" +
			"  imgfs hashes -o app.hashdeep ARCHIVE; cd MNT && hashdeep -o f -l -a -k app.hashdeep -r .\n" +
			"(-o f: regular files only, symlinks not followed.) A name a hashdeep line cannot hold (a newline in\n" +
			"it) is written as a \"## skipped\" comment with its hashes, and warned about.\n" +
			"--layers writes one file per layer into the directory -o DIR instead, named layer-NN-<diff_id hex>.hashdeep:\n" +
			"each layer's regular members as its tar holds them (whiteout markers included), for an audit of the\n" +
			"layer unpacked with tar -x. Outputs are written atomically.",
		Flags: append(archiveFlags(),
			&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "output `FILE` (default: stdout); with --layers a directory"},
			&cli.StringFlag{Name: "root", Value: ".", Usage: "`DIR` written before every name: the mount point for `hashdeep -r DIR`, or . for `hashdeep -l -r .` in it"},
			&cli.BoolFlag{Name: "layers", Usage: "one hash list per layer (into the directory -o DIR)"},
		),
		Action: runHashes,
	}
}

func runHashes(c *cli.Context) error {
	if c.NArg() != 1 {
		return usageError(c, "want ARCHIVE")
	}
	out := c.String("output")
	if c.Bool("layers") && (out == "" || out == "-") {
		return usageError(c, "--layers writes one file per layer: give -o DIR")
	}
	path := c.Args().First()
	log := newLogger(c)
	ctx := c.Context
	o, err := openImage(ctx, c, path, log)
	if err != nil {
		return err
	}
	defer o.Close()
	cwd, _ := os.Getwd()
	img := o.img
	opts := evidence.HashOptions{
		Root:       c.String("root"),
		Invocation: evidence.Invocation{Dir: cwd, Args: os.Args, Root: os.Geteuid() == 0},
		Logger:     log,
		Comments: []string{
			"imgfs archive: " + path,
			fmt.Sprintf("imgfs image: %s manifest %s config %s", strings.Join(orNone(img.Names), ","), img.ManifestDigest, img.ConfigDigest),
		},
	}
	where := "the mount point"
	if c.Bool("layers") {
		where = "the layer unpacked by tar -x"
	}
	switch root := opts.Root; {
	case strings.HasPrefix(root, "/"):
		opts.Comments = append(opts.Comments, "imgfs audit: hashdeep -o f -a -k THIS_FILE -r "+root+" ("+root+" being "+where+")")
	case root == "." || root == "" || root == "./":
		opts.Comments = append(opts.Comments, "imgfs audit: hashdeep -o f -l -a -k THIS_FILE -r . (run in "+where+")")
	default:
		opts.Comments = append(opts.Comments, "imgfs audit: hashdeep -o f -l -a -k THIS_FILE -r "+root+" (run where "+root+" is "+where+")")
	}
	pr := newProgress(c.Bool("quiet"), "hashing", 1)
	defer pr.done()
	if slot := pr.slot(0); slot != nil {
		opts.Progress = func(s evidence.HashStats) { slot(index.Progress{Entries: s.Files, Bytes: s.Bytes}) }
	}
	write := func(target string, fn func(w io.Writer) (evidence.HashStats, error)) error {
		var w io.Writer = os.Stdout
		var file *atomicFile
		if target != "" && target != "-" {
			var err error
			if file, err = createAtomic(target, log); err != nil {
				return err
			}
			defer file.Abort()
			w = file
		}
		st, err := fn(w)
		if err != nil {
			return fmt.Errorf("hashes %s: %w", path, err)
		}
		if st.Skipped > 0 {
			log.Warn("hashes: files listed only as comments (see the warnings above)", "output", target, "count", st.Skipped)
		}
		if file != nil {
			return file.Commit()
		}
		return nil
	}
	if !c.Bool("layers") {
		for i, l := range img.Layers {
			opts.Comments = append(opts.Comments, fmt.Sprintf("imgfs layer %d: %s diff_id %s", i+1, l.Digest, l.DiffID))
		}
		opts.Comments = append(opts.Comments, "imgfs list: the merged view's regular files")
		view, closeView, err := o.view("", log)
		if err != nil {
			return err
		}
		defer closeView()
		return write(out, func(w io.Writer) (evidence.HashStats, error) { return evidence.WriteHashes(ctx, view, w, opts) })
	}
	if err := os.MkdirAll(out, 0o777); err != nil {
		return fmt.Errorf("hashes: %w", err)
	}
	base := opts.Comments
	for i, l := range img.Layers {
		lo := opts
		lo.Comments = append(append([]string(nil), base...),
			fmt.Sprintf("imgfs layer %d of %d: %s diff_id %s media type %s", i+1, len(img.Layers), l.Digest, l.DiffID, l.MediaType),
			"imgfs list: the layer's regular members as its tar holds them")
		name := fmt.Sprintf("layer-%02d-%s.hashdeep", i+1, l.DiffID.Encoded())
		layer := o.layers[i]
		if err := write(filepath.Join(out, name), func(w io.Writer) (evidence.HashStats, error) {
			return evidence.WriteLayerHashes(ctx, layer, w, lo)
		}); err != nil {
			return err
		}
	}
	return nil
}
