package archive

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"

	"github.com/opencontainers/go-digest"
	ispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/imgfs/imgfs/compression"
)

// Options configure Open.
type Options struct {
	// CacheDir is the cache root handed to compression.Open for an archive wrapped in gzip or zstd
	// (its checkpoints, or a decompressed copy). Empty: nothing is persisted.
	CacheDir string
	// Logger receives warnings (skipped entries, ignored members) and notes; nil discards.
	Logger *slog.Logger
	// Progress, when set, is called while a compressed archive is indexed.
	Progress func(compression.Progress)
	// Hold, when set, is called with the cache key of a compressed archive's stream before the stream
	// is opened; what it returns is closed with the archive (the CLI holds the key's cache lease).
	Hold func(key digest.Digest) (io.Closer, error)
}

// Format names the kind of archive Open found.
type Format string

// Formats recognised by Open.
const (
	// FormatOCILayout is an OCI image layout directory (oci-layout, index.json, blobs/).
	FormatOCILayout Format = "oci-layout"
	// FormatOCIArchive is an OCI image layout in a tar (skopeo and podman oci-archive).
	FormatOCIArchive Format = "oci-archive"
	// FormatDockerArchive is a legacy docker-save tar: manifest.json, configs and layer tars at arbitrary
	// paths (docker save up to 24, podman, skopeo and crane docker-archive/tarball).
	FormatDockerArchive Format = "docker-archive"
	// FormatDockerOCIArchive is a tar holding an OCI layout plus manifest.json: docker save 25+ and
	// containerd's export. Images come from index.json; manifest.json adds tags.
	FormatDockerOCIArchive Format = "docker-archive+oci"
	// FormatDockerDir is an unpacked legacy docker-save tar (a directory with manifest.json).
	FormatDockerDir Format = "docker-dir"
)

// ImageRef lists one image of an archive, as Images returns it.
type ImageRef struct {
	// Names are the references the archive gives the image, as found: full references
	// ("docker.io/library/foo:1"), repository:tag pairs, or bare tags ("latest") from OCI ref.name
	// annotations. Nil when it has none.
	Names []string
	// ManifestDigest is the digest of the image manifest. It is empty for legacy docker-save images,
	// which have no stored manifest (Image synthesizes one).
	ManifestDigest digest.Digest
	// Platform is the platform from the index entry, or else from the image config; nil when unknown.
	Platform *ispec.Platform
	// Index numbers the archive's top-level entries that hold images, from 0: the n-th distinct entry of
	// index.json or manifest.json. All platforms of one multi-platform index share it.
	Index int
	// ImageID is the config digest when it is known without loading the image (always for docker-save
	// images, for OCI images when the manifest was readable at Open); "" otherwise.
	ImageID digest.Digest
}

// Archive is an open image archive. Its methods are safe for concurrent use.
type Archive struct {
	path    string
	format  Format
	comp    compression.Format
	src     source
	log     *slog.Logger
	entries []*entry
	skipped []string // why top-level entries were left out, for "no matching image" errors
	groups  int
	closed  atomic.Bool

	mu     sync.Mutex
	hashed map[string]digest.Digest // legacy layers whose digest had to be computed, by member name
}

// entry is one selectable image.
type entry struct {
	ref          ImageRef
	descPlatform bool               // ref.Platform came from an index descriptor
	parents      []digest.Digest    // indexes this manifest was reached through
	via          []ispec.Descriptor // their descriptors, top first, as their parents state them
	config       digest.Digest      // config digest, when known

	// OCI
	desc     ispec.Descriptor
	manifest *ispec.Manifest // parsed at Open when its blob was readable
	artifact bool

	// legacy docker-save
	legacy *legacyImage

	// plain tarball
	plain *plainImage
}

// Open opens the image archive at path read-only and lists its images. The format is detected by
// content: a directory holding an OCI layout (or an unpacked docker-save), or a tar (docker-save,
// docker 25+ / containerd export, oci-archive), possibly wrapped whole in gzip or zstd.
func Open(ctx context.Context, path string, opts Options) (*Archive, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	a := &Archive{path: path, log: opts.Logger, hashed: map[string]digest.Digest{}}
	if err := a.open(ctx, opts); err != nil {
		if a.src != nil {
			a.src.close()
		}
		return nil, a.wrap(err)
	}
	return a, nil
}

func (a *Archive) wrap(err error) error { return fmt.Errorf("archive %s: %w", a.path, err) }

func (a *Archive) open(ctx context.Context, opts Options) error {
	f, err := openSource(func(flag int) (*os.File, error) { return os.OpenFile(a.path, flag, 0) }, a.path, a.log)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return err
	}
	dir := st.IsDir()
	switch {
	case dir:
		f.Close()
		ds, err := newDirSource(a.path, a.log)
		if err != nil {
			return err
		}
		a.src = ds
	case st.Mode().IsRegular() && st.Size() == 0:
		f.Close()
		return errorf(ErrFormat, "empty file: not an image archive or a tar")
	case st.Mode().IsRegular() && knownPlain(f, st.Size(), opts.CacheDir):
		// Remembered as a plain tarball, as this very file: no outer scan.
		c, err := compression.Detect(f, 0)
		if err != nil {
			f.Close()
			return errorf(ErrUnsupported, "%w", err)
		}
		ts := &tarSource{r: f, file: f, closers: []io.Closer{f}}
		a.src, a.comp = ts, c
		return a.loadPlain(ctx, ts, opts)
	case st.Mode().IsRegular():
		ts, c, err := openTarSource(ctx, f, st.Size(), opts)
		if err != nil {
			return err
		}
		a.src, a.comp = ts, c
		if ts.many {
			return a.loadPlain(ctx, ts, opts)
		}
	default:
		f.Close()
		return errorf(ErrFormat, "not a regular file or directory (%s)", st.Mode().Type())
	}

	hasIndex, hasLayout, hasManifest := a.src.exists("index.json"), a.src.exists("oci-layout"), a.src.exists("manifest.json")
	switch {
	case hasIndex || hasLayout:
		switch {
		case dir:
			a.format = FormatOCILayout
		case hasManifest:
			a.format = FormatDockerOCIArchive
		default:
			a.format = FormatOCIArchive
		}
		return a.loadOCI(ctx, hasManifest)
	case hasManifest:
		a.format = FormatDockerArchive
		if dir {
			a.format = FormatDockerDir
		}
		return a.loadLegacy(ctx)
	case dir:
		return errorf(ErrFormat, "not an image archive: no index.json, oci-layout or manifest.json in the directory")
	default:
		// No image archive marker: a plain tarball, one layer.
		return a.loadPlain(ctx, a.src.(*tarSource), opts)
	}
}

// Format says what kind of archive this is.
func (a *Archive) Format() Format { return a.format }

// Compression says how the archive file as a whole is compressed (CompressionNone for a directory).
func (a *Archive) Compression() compression.Format { return a.comp }

// Path returns the path the archive was opened from.
func (a *Archive) Path() string { return a.path }

// Images lists the archive's images in archive order. Entries that are not images (artifacts, unknown
// media types, attestation manifests) are left out.
func (a *Archive) Images() []ImageRef {
	refs := make([]ImageRef, len(a.entries))
	for i, e := range a.entries {
		refs[i] = e.ref
		refs[i].ImageID = e.config
		refs[i].Names = append([]string(nil), e.ref.Names...)
		if e.ref.Platform != nil {
			p := *e.ref.Platform
			refs[i].Platform = &p
		}
	}
	return refs
}

// Close releases the archive's files. Blobs handed out before become invalid.
func (a *Archive) Close() error {
	if a.closed.Swap(true) {
		return nil
	}
	return a.src.close()
}

// addEntry appends an image entry.
func (a *Archive) addEntry(e *entry) { a.entries = append(a.entries, e) }

// newGroup allocates the Index of a new top-level entry.
func (a *Archive) newGroup() int {
	a.groups++
	return a.groups - 1
}

// addNames adds names to every entry of a group, without duplicates.
func (a *Archive) addNames(group int, names []string) {
	for _, e := range a.entries {
		if e.ref.Index == group {
			e.ref.Names = appendNew(e.ref.Names, names...)
		}
	}
}

// appendNew appends the non-empty names not yet in list.
func appendNew(list []string, names ...string) []string {
outer:
	for _, n := range names {
		if n == "" {
			continue
		}
		for _, have := range list {
			if have == n {
				continue outer
			}
		}
		list = append(list, n)
	}
	return list
}

// readFile reads a small document stored at name in the source.
func (a *Archive) readFile(name string, limit int64) ([]byte, error) {
	b, _, err := a.src.open(name)
	if err != nil {
		return nil, err
	}
	return readBlobJSON(b, limit)
}

// readBlob reads the small blob d describes (a manifest, an index, a config) and checks its size and
// digest.
func (a *Archive) readBlob(d ispec.Descriptor, limit int64) ([]byte, error) {
	if err := checkDigest(d.Digest); err != nil {
		return nil, err
	}
	if d.Size > limit {
		return nil, invalidf("descriptor size %d is more than the %d allowed", d.Size, limit)
	}
	b, _, err := a.src.open(blobPath(d.Digest))
	if err != nil {
		if errors.Is(err, ErrMissingBlob) {
			return nil, errorf(ErrMissingBlob, "blob not in archive")
		}
		return nil, err
	}
	if b.Size != d.Size {
		return nil, invalidf("blob is %d bytes, descriptor says %d", b.Size, d.Size)
	}
	raw, err := readBlobJSON(b, limit)
	if err != nil {
		return nil, err
	}
	if !verifyBytes(d.Digest, raw) {
		return nil, invalidf("content does not match its digest (it hashes to %s)", hashOf(d.Digest, raw))
	}
	return raw, nil
}
