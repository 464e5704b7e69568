package imagewrite

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/opencontainers/go-digest"
	ispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/imgfs/imgfs/archive"
	"github.com/imgfs/imgfs/compression"
	"github.com/imgfs/imgfs/internal/digests"
	"github.com/imgfs/imgfs/internal/kinderr"
)

// Sentinel errors; errors.Is tells them apart.
var (
	// ErrInvalid means an argument is unusable: an unknown format or compression, a malformed tag, no
	// layer and no base.
	ErrInvalid = errors.New("imagewrite: invalid argument")
	// ErrChange means a --change line cannot be parsed or applied.
	ErrChange = errors.New("imagewrite: invalid change")
	// ErrExists means the output is an existing directory that is not empty.
	ErrExists = errors.New("imagewrite: output exists")
	// ErrBase means the base image is inconsistent: a blob whose bytes do not match its digest, a missing
	// blob, a malformed config.
	ErrBase = errors.New("imagewrite: invalid base image")
)

// errorf formats an error of the given kind (a sentinel of this package); %w wraps as fmt.Errorf does.
func errorf(kind error, format string, args ...any) error {
	return kinderr.Errorf(kind, format, args...)
}

// Format is the kind of archive Write produces. The names are skopeo's transport names.
type Format string

// Output formats.
const (
	// FormatDockerArchive is a docker-save tarball (manifest.json, repositories, <hex>.json config and
	// <hex>.tar layer files) that docker load and podman load accept.
	FormatDockerArchive Format = "docker-archive"
	// FormatOCI is an OCI image layout directory (oci-layout, index.json, blobs/sha256/).
	FormatOCI Format = "oci"
	// FormatOCIArchive is an OCI image layout in a tar file.
	FormatOCIArchive Format = "oci-archive"
)

// ParseFormat parses a format name: "docker-archive", "oci" or "oci-archive".
func ParseFormat(s string) (Format, error) {
	switch f := Format(s); f {
	case FormatDockerArchive, FormatOCI, FormatOCIArchive:
		return f, nil
	}
	return "", errorf(ErrInvalid, "format %q: want docker-archive, oci or oci-archive", clip(s))
}

// ParseCompression parses a compression name for new layers: "none" (or "uncompressed"), "gzip" or
// "zstd".
func ParseCompression(s string) (compression.Format, error) {
	switch s {
	case "none", "uncompressed":
		return compression.None, nil
	case "gzip":
		return compression.Gzip, nil
	case "zstd":
		return compression.Zstd, nil
	}
	return 0, errorf(ErrInvalid, "compression %q: want none, gzip or zstd", clip(s))
}

// Options say how Write writes.
type Options struct {
	// Format is the output format; it need not be the base image's.
	Format Format
	// Compression is the compression of the new layers (the base layers are copied as they are). The
	// zero value is none, as skopeo does for docker-archive; callers choose gzip for OCI outputs.
	Compression compression.Format
	// Tags name the image, as NAME[:TAG] ("foo:1", "registry.example/team/foo:2"); a missing tag is
	// "latest". docker-archive writes them as RepoTags; OCI outputs list the manifest once per tag with
	// the annotations org.opencontainers.image.ref.name (the tag as given) and io.containerd.image.name
	// (the full name, docker.io/ and library/ added). No tag: the manifest is listed once, unnamed.
	Tags []string
	// Logger receives notes on what is written; nil discards.
	Logger *slog.Logger
	// Progress, when set, is called while the new layers are written, at most about ten times a second
	// and once at the end of each layer: done counts the uncompressed bytes written so far, total is the
	// sum of the layers' Size hints, or -1 when some layer has none.
	Progress func(done, total int64)
}

// Layer is a new layer to add on top of the base.
type Layer struct {
	// Write writes the layer's uncompressed tar stream to w (not safe for concurrent use). It must stop
	// and return ctx's error when ctx is done; an error from w (for one, the write being cancelled) must
	// be returned as is.
	Write func(ctx context.Context, w io.Writer) error
	// Size is the expected size of the uncompressed stream, for Progress only; 0 if unknown.
	Size int64
	// History is the layer's history entry. Zero fields are taken from Config (Created, CreatedBy,
	// Author, Comment); EmptyLayer is ignored.
	History ispec.History
}

// Config describes the new image config. With a base image, its config is edited: everything not
// mentioned here is kept as it was, unknown fields included.
type Config struct {
	// Author sets the config's author and the history entries' (docker commit -a). Empty: the base's
	// author is kept.
	Author string
	// Comment is the history comment (docker commit -m, docker import -m).
	Comment string
	// CreatedBy is the history entry's created_by.
	CreatedBy string
	// Created is the creation time written to the config and its history (SOURCE_DATE_EPOCH for
	// reproducible output). Zero means now.
	Created time.Time
	// Changes are Dockerfile instructions applied to the config, as docker commit -c takes them (see
	// ParseChange).
	Changes []string
	// Platform is the platform of an image without a base (import); nil means the host's. It must be nil
	// with a base image, whose platform is kept.
	Platform *ispec.Platform
}

// Result describes what Write wrote.
type Result struct {
	// ManifestDigest is the digest of the image manifest. For docker-archive, which stores no manifest,
	// it is the digest of the OCI manifest that describes the written blobs (the one package archive
	// synthesizes when it reads the output back).
	ManifestDigest digest.Digest
	// ConfigDigest is the digest of the config blob: the image ID.
	ConfigDigest digest.Digest
	// Layers are every layer of the written image, bottom first: the base's, then the new ones.
	Layers []LayerInfo
}

// LayerInfo describes one layer of the written image.
type LayerInfo struct {
	// Digest is the digest of the stored blob; DiffID that of its uncompressed tar.
	Digest, DiffID digest.Digest
	// MediaType is the OCI layer media type.
	MediaType string
	// Size is the size of the stored blob.
	Size int64
}

// Write writes an image made of base's layers (base may be nil) and then layers to out in the format
// opts.Format, with base's config edited as cfg says (or a fresh config without a base). The base may
// come from any input format; its blobs are copied byte for byte and checked against their digests.
// Nothing appears at out unless everything was written: see the package documentation.
func Write(ctx context.Context, out string, base *archive.Image, layers []Layer, cfg Config, opts Options) (Result, error) {
	res, err := write(ctx, out, base, layers, cfg, opts)
	if err != nil {
		return Result{}, fmt.Errorf("imagewrite %s: %w", out, err)
	}
	return res, nil
}

// plan is everything checked and prepared before the first byte is written.
type plan struct {
	format  Format
	comp    compression.Format
	tags    []string
	changes []Change
	created time.Time
	log     *slog.Logger
	base    []baseLayer
	raw     []byte // base config, or nil
	layers  []Layer
	cfg     Config
	opts    Options
}

// baseLayer is a base layer with its blob and detected compression.
type baseLayer struct {
	archive.Layer
	blob compression.Blob
	comp compression.Format
}

func write(ctx context.Context, out string, base *archive.Image, layers []Layer, cfg Config, opts Options) (Result, error) {
	if out == "" {
		return Result{}, errorf(ErrInvalid, "no output path")
	}
	out = filepath.Clean(out)
	p, err := prepare(base, layers, cfg, opts)
	if err != nil {
		return Result{}, err
	}
	if err := ctx.Err(); err != nil {
		return Result{}, err
	}
	reclaimTemps(out, p.log)
	var st store
	switch p.format {
	case FormatOCI:
		st, err = newDirStore(out)
	default:
		st, err = newTarStore(out, p.created, p.base)
	}
	if err != nil {
		return Result{}, err
	}
	res, err := p.run(ctx, st)
	if err != nil {
		st.abort()
		return Result{}, err
	}
	if err := st.commit(); err != nil {
		st.abort()
		return Result{}, err
	}
	p.log.Info("image written", "path", out, "format", p.format, "manifest", res.ManifestDigest, "config", res.ConfigDigest, "layers", len(res.Layers))
	return res, nil
}

// prepare checks the arguments and gathers what Write needs before it writes anything.
func prepare(base *archive.Image, layers []Layer, cfg Config, opts Options) (*plan, error) {
	p := &plan{format: opts.Format, comp: opts.Compression, log: opts.Logger, layers: layers, cfg: cfg, opts: opts}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	if _, err := ParseFormat(string(p.format)); err != nil {
		return nil, err
	}
	switch p.comp {
	case compression.None, compression.Gzip, compression.Zstd:
	default:
		return nil, errorf(ErrInvalid, "compression %s: want none, gzip or zstd", p.comp)
	}
	for _, t := range opts.Tags {
		n, err := normalizeTag(t)
		if err != nil {
			return nil, err
		}
		if !contains(p.tags, n) {
			p.tags = append(p.tags, n)
		}
	}
	for i, l := range layers {
		if l.Write == nil {
			return nil, errorf(ErrInvalid, "new layer %d: no Write function", i+1)
		}
	}
	for _, line := range cfg.Changes {
		c, err := ParseChange(line)
		if err != nil {
			return nil, err
		}
		p.changes = append(p.changes, c)
	}
	p.created = cfg.Created
	if p.created.IsZero() {
		p.created = time.Now()
	}
	p.created = p.created.UTC()
	if err := checkTime(p.created); err != nil {
		return nil, err
	}
	for i, l := range layers {
		if l.History.Created != nil {
			if err := checkTime(*l.History.Created); err != nil {
				return nil, fmt.Errorf("new layer %d: history: %w", i+1, err)
			}
		}
	}
	if base == nil {
		if len(layers) == 0 {
			return nil, errorf(ErrInvalid, "no base image and no layer")
		}
		return p, p.tryConfig()
	}
	if cfg.Platform != nil {
		return nil, errorf(ErrInvalid, "a platform is only for an image without a base (the base's is kept)")
	}
	if len(base.RawConfig) == 0 {
		return nil, errorf(ErrBase, "base image has no config")
	}
	p.raw = base.RawConfig
	if err := p.tryConfig(); err != nil {
		return nil, err
	}
	for i, l := range base.Layers {
		b, err := l.Blob()
		if err != nil {
			return nil, errorf(ErrBase, "base layer %d %s: %w", i+1, l.Digest, err)
		}
		if err := digests.Check(l.Digest); err != nil {
			return nil, errorf(ErrBase, "base layer %d: %w", i+1, err)
		}
		if err := digests.Check(l.DiffID); err != nil {
			return nil, errorf(ErrBase, "base layer %d: diff_id: %w", i+1, err)
		}
		c, err := compression.Detect(io.NewSectionReader(b.R, b.Off, b.Size), 0)
		if err != nil {
			return nil, errorf(ErrBase, "base layer %d %s: %w", i+1, l.Digest, err)
		}
		p.base = append(p.base, baseLayer{Layer: l, blob: b, comp: c})
	}
	return p, nil
}

// platform is the platform of a fresh config (no base): Config.Platform, or the host's.
func (p *plan) platform() *ispec.Platform {
	if p.cfg.Platform != nil || p.raw != nil {
		return p.cfg.Platform
	}
	h := archive.HostPlatform()
	return &h
}

// tryConfig edits the config once without the new layers, so that a change that cannot apply (or a
// malformed base config) fails before anything is written.
func (p *plan) tryConfig() error {
	_, err := buildConfig(p.raw, p.platform(), nil, nil, p.created, p.cfg.Author, p.changes)
	return err
}

// run writes the blobs and documents of the image into st.
func (p *plan) run(ctx context.Context, st store) (Result, error) {
	var res Result
	lay := newLayout(p.format)
	if err := lay.begin(st); err != nil {
		return res, err
	}
	for i, l := range p.base {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		name := lay.layerName(l.Digest, l.comp)
		if !st.has(name) {
			start := time.Now()
			if err := st.copyBlob(ctx, name, l.blob, l.Digest); err != nil {
				return res, fmt.Errorf("base layer %d: %w", i+1, err)
			}
			p.log.Debug("copied base layer", "digest", l.Digest, "bytes", l.Size, "took", time.Since(start))
		}
		mt := l.MediaType
		if p.format == FormatDockerArchive || mt == "" || isPlainLayerType(mt) && mt != archive.LayerMediaType(l.comp) {
			if p.format != FormatDockerArchive && mt != "" {
				p.log.Warn("base layer media type does not match its content; corrected", "digest", l.Digest, "was", mt, "compression", l.comp)
			}
			mt = archive.LayerMediaType(l.comp)
		}
		res.Layers = append(res.Layers, LayerInfo{Digest: l.Digest, DiffID: l.DiffID, MediaType: mt, Size: l.blob.Size})
		lay.addLayer(name, ispec.Descriptor{MediaType: mt, Digest: l.Digest, Size: l.blob.Size, Annotations: l.Annotations})
	}
	prog := newProgress(p.opts.Progress, p.layers)
	var hist []ispec.History
	for i, l := range p.layers {
		start := time.Now()
		info, name, err := writeLayer(ctx, st, lay, l, p.comp, prog)
		if err != nil {
			return res, fmt.Errorf("new layer %d: %w", i+1, err)
		}
		p.log.Info("wrote new layer", "digest", info.Digest, "diff_id", info.DiffID, "bytes", info.Size, "compression", p.comp, "took", time.Since(start))
		res.Layers = append(res.Layers, info)
		lay.addLayer(name, ispec.Descriptor{MediaType: info.MediaType, Digest: info.Digest, Size: info.Size})
		hist = append(hist, p.history(l.History, false))
	}
	if len(p.layers) == 0 {
		hist = append(hist, p.history(ispec.History{}, true))
	}
	diffIDs := make([]digest.Digest, 0, len(p.layers))
	for _, l := range res.Layers[len(p.base):] {
		diffIDs = append(diffIDs, l.DiffID)
	}
	rawCfg, err := buildConfig(p.raw, p.platform(), diffIDs, hist, p.created, p.cfg.Author, p.changes)
	if err != nil {
		return res, err
	}
	res.ConfigDigest = digest.FromBytes(rawCfg)
	res.ManifestDigest, err = lay.finish(st, rawCfg, p.tags, configPlatform(rawCfg))
	if err != nil {
		return res, err
	}
	return res, nil
}

// history is a new history entry: h with its zero fields taken from the Config.
func (p *plan) history(h ispec.History, empty bool) ispec.History {
	if h.Created == nil {
		t := p.created
		h.Created = &t
	} else {
		t := h.Created.UTC()
		h.Created = &t
	}
	if h.CreatedBy == "" {
		h.CreatedBy = p.cfg.CreatedBy
	}
	if h.Author == "" {
		h.Author = p.cfg.Author
	}
	if h.Comment == "" {
		h.Comment = p.cfg.Comment
	}
	h.EmptyLayer = empty
	return h
}

// checkTime refuses times that JSON cannot carry (RFC 3339 years are 0 to 9999).
func checkTime(t time.Time) error {
	if y := t.UTC().Year(); y < 0 || y > 9999 {
		return errorf(ErrInvalid, "created time %s: year out of range", t)
	}
	return nil
}

// isPlainLayerType says whether mt is one of the three usual OCI layer media types (which differ only by
// compression).
func isPlainLayerType(mt string) bool {
	return mt == ispec.MediaTypeImageLayer || mt == ispec.MediaTypeImageLayerGzip || mt == ispec.MediaTypeImageLayerZstd
}

// clip shortens a string for an error message.
func clip(s string) string {
	if len(s) > 80 {
		return s[:77] + "..."
	}
	return s
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
