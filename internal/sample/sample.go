// Package sample writes the small multi-layer image that `make demo` mounts: three layers with a
// whiteout, an opaque directory, hardlinks (one into a lower layer), symlinks, xattrs, a device node,
// a FIFO and a gzip-compressed top layer, packed as a legacy docker-save archive.
package sample

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	"github.com/imgfs/imgfs/internal/atomicfile"
	"github.com/imgfs/imgfs/internal/tartest"
)

// Name is the image's reference inside the archive.
const Name = "imgfs/sample:latest"

var epoch = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

// Layers returns the sample's layer members, bottom first.
func Layers() [][]tartest.Member {
	x := func(m tartest.Member, mode int64) tartest.Member { m.Mode = mode; return m }
	return [][]tartest.Member{
		{ // base system
			tartest.Dir("etc"),
			tartest.File("etc/os-release", "NAME=\"imgfs sample\"\nVERSION_ID=1\n"),
			tartest.File("etc/motd", "Welcome to the imgfs sample (layer 1).\n"),
			tartest.Dir("usr"), tartest.Dir("usr/bin"),
			x(tartest.File("usr/bin/hello", "#!/bin/sh\necho hello from imgfs\n"), 0o755),
			tartest.Hardlink("usr/bin/hello-again", "usr/bin/hello"),
			tartest.Symlink("bin", "usr/bin"),
			tartest.Dir("usr/share/doc/sample"),
			tartest.File("usr/share/doc/sample/README", "This tree comes from three layers; nothing was extracted.\n"),
			{Name: "var/cache/app/", Type: tar.TypeDir, Mode: 0o755},
			tartest.File("var/cache/app/old-1.bin", "stale cache 1\n"),
			tartest.File("var/cache/app/old-2.bin", "stale cache 2\n"),
			{Name: "home/user/", Type: tar.TypeDir, Mode: 0o750, UID: 1000, GID: 1000},
			{Name: "home/user/notes.txt", Body: []byte("owned by 1000:1000\n"), Mode: 0o600, UID: 1000, GID: 1000},
			{Name: "dev/", Type: tar.TypeDir, Mode: 0o755},
			{Name: "dev/null", Type: tar.TypeChar, Mode: 0o666, Devmajor: 1, Devminor: 3},
		},
		{ // application layer: deletes, replaces, adds
			tartest.Whiteout("etc", "motd"),
			tartest.Opaque("var/cache/app"),
			tartest.File("var/cache/app/fresh.bin", "fresh cache (layer 2; the old entries are hidden by an opaque marker)\n"),
			tartest.File("etc/os-release", "NAME=\"imgfs sample\"\nVERSION_ID=2\n"),
			{Name: "app/", Type: tar.TypeDir, Mode: 0o755},
			{Name: "app/config.json", Body: []byte("{\"greeting\": \"hello\"}\n"), Mode: 0o644,
				Xattrs: map[string]string{"user.imgfs.origin": "layer 2", "user.imgfs.checksum": "none"}},
			tartest.Symlink("app/current", "/app/v2"),
			{Name: "app/v2/", Type: tar.TypeDir, Mode: 0o755},
			tartest.File("app/v2/run.sh", "#!/bin/sh\nexec /usr/bin/hello\n"),
			tartest.Hardlink("app/hello-hardlink", "usr/bin/hello"), // target lives in layer 1
			{Name: "app/pipe", Type: tar.TypeFifo, Mode: 0o644},
		},
		{ // top layer (stored gzip-compressed)
			tartest.File("app/v2/VERSION", "2.0.0\n"),
			tartest.Whiteout("usr/share/doc", "sample"),
			tartest.File("usr/share/doc/sample-2.txt", "The old doc directory was removed by a whiteout in layer 3.\n"),
		},
	}
}

// Write writes the sample archive to path (atomically).
func Write(path string) error { return WriteArchive(path, Name, Layers(), true) }

// WriteArchive writes a legacy docker-save archive of one image called name with the given layers,
// bottom first; with gzipTop the top layer is stored gzip-compressed.
func WriteArchive(path, name string, layerMembers [][]tartest.Member, gzipTop bool) error {
	type layer struct {
		file   string
		diffID string
		data   []byte
	}
	var layers []layer
	for i, members := range layerMembers {
		raw, err := tartest.Build(members...)
		if err != nil {
			return fmt.Errorf("sample layer %d: %w", i+1, err)
		}
		diff := sha256.Sum256(raw)
		data := raw
		name := hex.EncodeToString(diff[:]) + ".tar"
		if gzipTop && i == len(layerMembers)-1 {
			var buf bytes.Buffer
			zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
			zw.Write(raw)
			zw.Close()
			data = buf.Bytes()
			sum := sha256.Sum256(data)
			name = hex.EncodeToString(sum[:]) + ".tar.gz"
		}
		layers = append(layers, layer{file: name, diffID: "sha256:" + hex.EncodeToString(diff[:]), data: data})
	}
	diffIDs := make([]string, len(layers))
	files := make([]string, len(layers))
	for i, l := range layers {
		diffIDs[i], files[i] = l.diffID, l.file
	}
	cfg := map[string]any{
		"created":      epoch.Format(time.RFC3339),
		"author":       "imgfs sample",
		"architecture": "amd64",
		"os":           "linux",
		"config": map[string]any{
			"Env":        []string{"PATH=/usr/local/bin:/usr/bin:/bin"},
			"Cmd":        []string{"/usr/bin/hello"},
			"WorkingDir": "/app",
			"Labels":     map[string]string{"org.opencontainers.image.title": "imgfs sample"},
		},
		"rootfs":  map[string]any{"type": "layers", "diff_ids": diffIDs},
		"history": history(len(layers)),
	}
	cfgJSON, err := json.Marshal(cfg)
	if err != nil {
		return err
	}
	cfgSum := sha256.Sum256(cfgJSON)
	cfgName := hex.EncodeToString(cfgSum[:]) + ".json"
	manifest, err := json.Marshal([]map[string]any{{"Config": cfgName, "RepoTags": []string{name}, "Layers": files}})
	if err != nil {
		return err
	}

	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	add := func(name string, data []byte) error {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(data)), ModTime: epoch, Typeflag: tar.TypeReg}); err != nil {
			return err
		}
		_, err := tw.Write(data)
		return err
	}
	for _, l := range layers {
		if err := add(l.file, l.data); err != nil {
			return err
		}
	}
	if err := add(cfgName, cfgJSON); err != nil {
		return err
	}
	if err := add("manifest.json", manifest); err != nil {
		return err
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return writeAtomic(path, buf.Bytes())
}

func history(n int) []map[string]any {
	comments := []string{"layer 1", "layer 2: whiteout, opaque dir, hardlink into layer 1", "layer 3 (gzip)"}
	by := []string{"base system", "application", "update"}
	var h []map[string]any
	for i := range n {
		e := map[string]any{"created": epoch.Format(time.RFC3339), "created_by": fmt.Sprintf("layer %d", i+1)}
		if n == len(comments) {
			e["created_by"], e["comment"] = by[i], comments[i]
		}
		h = append(h, e)
	}
	return h
}

func writeAtomic(path string, data []byte) error {
	f, err := atomicfile.Create(path, ".sample-*.tmp")
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Abort()
		return err
	}
	return f.Commit()
}
