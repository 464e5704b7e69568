// Package tartest builds tar fixtures in code for tests: ordinary members, PAX and GNU extensions, and
// hostile members (raw names, broken headers) that archive/tar would refuse to write.
package tartest

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
)

// Member is one tar member to write. Zero fields get defaults: Mode 0644 (0755 for directories), Mtime
// 2024-01-01T00:00:00Z, Format PAX when Xattrs or PAX records are present.
type Member struct {
	Name     string
	Type     byte // tar.TypeReg (default), tar.TypeDir, tar.TypeSymlink, tar.TypeLink, tar.TypeChar, ...
	Body     []byte
	Linkname string
	Mode     int64
	UID, GID int
	Uname    string
	Gname    string
	Mtime    time.Time
	Devmajor int64
	Devminor int64
	Xattrs   map[string]string // written as PAX SCHILY.xattr.<name>
	PAX      map[string]string // extra PAX records
	Format   tar.Format
	Size     int64 // when non-zero, overrides len(Body) in the header (for truncation tests)
	// Atime and Ctime, when set, are written as PAX atime and ctime records.
	Atime, Ctime time.Time
}

// Helpers for the common member kinds.

// File is a regular file with the given content.
func File(name, body string) Member { return Member{Name: name, Body: []byte(body)} }

// Dir is a directory.
func Dir(name string) Member { return Member{Name: name, Type: tar.TypeDir} }

// Symlink is a symbolic link name -> target.
func Symlink(name, target string) Member {
	return Member{Name: name, Type: tar.TypeSymlink, Linkname: target}
}

// Hardlink is a hard link name -> target (target is a path relative to the archive root).
func Hardlink(name, target string) Member {
	return Member{Name: name, Type: tar.TypeLink, Linkname: target}
}

// Whiteout is the OCI whiteout marker for name in dir ("dir/.wh.name").
func Whiteout(dir, name string) Member {
	if dir == "" {
		return File(".wh."+name, "")
	}
	return File(dir+"/.wh."+name, "")
}

// Opaque is the OCI opaque marker of dir.
func Opaque(dir string) Member { return File(dir+"/.wh..wh..opq", "") }

// Tar returns the members as an uncompressed tar stream with its end-of-archive marker.
func Tar(t testing.TB, members ...Member) []byte {
	t.Helper()
	b, err := Build(members...)
	if err != nil {
		t.Fatalf("tartest: %v", err)
	}
	return b
}

// Build is Tar without a testing.TB, for fuzz seeds and generators.
func Build(members ...Member) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, m := range members {
		if err := write(tw, m); err != nil {
			return nil, fmt.Errorf("member %q: %w", m.Name, err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func write(tw *tar.Writer, m Member) error {
	typ := m.Type
	if typ == 0 {
		typ = tar.TypeReg
	}
	mode := m.Mode
	if mode == 0 {
		mode = 0o644
		if typ == tar.TypeDir {
			mode = 0o755
		}
	}
	mt := m.Mtime
	if mt.IsZero() {
		mt = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	}
	hdr := &tar.Header{
		Name: m.Name, Typeflag: typ, Linkname: m.Linkname, Mode: mode, Uid: m.UID, Gid: m.GID,
		Uname: m.Uname, Gname: m.Gname, ModTime: mt, Devmajor: m.Devmajor, Devminor: m.Devminor,
		Format: m.Format, AccessTime: m.Atime, ChangeTime: m.Ctime,
	}
	if (!m.Atime.IsZero() || !m.Ctime.IsZero()) && hdr.Format == tar.FormatUnknown {
		hdr.Format = tar.FormatPAX
	}
	switch typ {
	case tar.TypeLink, tar.TypeSymlink, tar.TypeChar, tar.TypeBlock, tar.TypeDir, tar.TypeFifo:
	default: // regular files, and typeflags a reader must treat as regular files
		hdr.Size = int64(len(m.Body))
		if m.Size != 0 {
			hdr.Size = m.Size
		}
	}
	if len(m.Xattrs) > 0 || len(m.PAX) > 0 {
		hdr.PAXRecords = map[string]string{}
		for k, v := range m.Xattrs {
			hdr.PAXRecords["SCHILY.xattr."+k] = v
		}
		for k, v := range m.PAX {
			hdr.PAXRecords[k] = v
		}
		if hdr.Format == tar.FormatUnknown {
			hdr.Format = tar.FormatPAX
		}
	}
	if err := tw.WriteHeader(hdr); err != nil {
		return err
	}
	if len(m.Body) > 0 {
		body := m.Body
		if m.Size != 0 && m.Size < int64(len(body)) {
			body = body[:m.Size]
		}
		if _, err := tw.Write(body); err != nil && err != tar.ErrWriteTooLong {
			return err
		}
	}
	return nil
}

// RawHeader returns one 512-byte ustar header block for name with the given typeflag and size, with a
// correct checksum, without any of archive/tar's validation (for names with "..", absolute names, etc.).
// The caller appends the data blocks and the two zero blocks.
func RawHeader(name string, typeflag byte, size int64, linkname string) []byte {
	var b [512]byte
	copy(b[0:100], name)
	copy(b[100:108], fmt.Sprintf("%07o\x00", 0o644))
	copy(b[108:116], fmt.Sprintf("%07o\x00", 0))
	copy(b[116:124], fmt.Sprintf("%07o\x00", 0))
	copy(b[124:136], fmt.Sprintf("%011o\x00", size))
	copy(b[136:148], fmt.Sprintf("%011o\x00", 1704067200))
	b[156] = typeflag
	copy(b[157:257], linkname)
	copy(b[257:263], "ustar\x00")
	copy(b[263:265], "00")
	for i := 148; i < 156; i++ {
		b[i] = ' '
	}
	var sum int64
	for _, c := range b {
		sum += int64(c)
	}
	copy(b[148:156], fmt.Sprintf("%06o\x00 ", sum))
	return b[:]
}

// Pad rounds data up to whole 512-byte blocks.
func Pad(data []byte) []byte {
	if r := len(data) % 512; r != 0 {
		data = append(data, make([]byte, 512-r)...)
	}
	return data
}

// End is the end-of-archive marker: two zero blocks.
func End() []byte { return make([]byte, 1024) }

// Gzip compresses b as one gzip member.
func Gzip(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// Zstd compresses b as one zstd frame.
func Zstd(t testing.TB, b []byte) []byte {
	t.Helper()
	enc, err := zstd.NewWriter(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	return enc.EncodeAll(b, nil)
}

// Concat joins byte slices.
func Concat(parts ...[]byte) []byte {
	var buf bytes.Buffer
	for _, p := range parts {
		buf.Write(p)
	}
	return buf.Bytes()
}

var _ io.Writer = (*bytes.Buffer)(nil)
