package index

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/imgfs/imgfs/internal/posixacl"
)

// scanned is a copy of a tarMember that outlives the scanner.
type scanned struct {
	Name, Link string
	Flag       byte
	Type       Type
	Mode       uint32
	UID, GID   uint32
	Size       int64
	Sec        int64
	Nsec       uint32
	Major      uint32
	Minor      uint32
	Xattrs     []string // "name=value"
	Offset     int64
	Stored     int64
	Sparse     []SparseRegion
}

func copyMember(m *tarMember) scanned {
	s := scanned{
		Name: string(m.Name), Link: string(m.LinkName), Flag: m.Flag, Type: m.Type, Mode: m.Mode,
		UID: m.UID, GID: m.GID, Size: m.Size, Sec: m.MtimeSec, Nsec: m.MtimeNsec,
		Major: m.Devmajor, Minor: m.Devminor, Offset: m.Offset, Stored: m.Stored,
		Sparse: slices.Clone(m.Sparse),
	}
	for _, x := range m.Xattrs {
		s.Xattrs = append(s.Xattrs, string(x.Name)+"="+string(x.Value))
	}
	return s
}

// scanMode selects how the scanner reads its input.
type scanMode int

const (
	modeReaderAt  scanMode = iota // io.ReaderAt at a base offset, default buffer
	modeReaderAtS                 // io.ReaderAt with a tiny buffer: refills and repositioning
	modeReader                    // io.Reader in odd-sized chunks with a tiny buffer
)

// chunkReader returns at most n bytes per Read.
type chunkReader struct {
	r io.Reader
	n int
}

func (c *chunkReader) Read(p []byte) (int, error) {
	if len(p) > c.n {
		p = p[:c.n]
	}
	return c.r.Read(p)
}

func newTestScanner(data []byte, mode scanMode) *tarScanner {
	switch mode {
	case modeReaderAtS, modeReaderAt:
		const base = 7
		src := append(bytes.Repeat([]byte{0xee}, base), data...)
		src = append(src, 0xee, 0xee, 0xee) // beyond the stream: never read
		s := newScannerAt(bytes.NewReader(src), base, int64(len(data)))
		if mode == modeReaderAtS {
			s.buf = make([]byte, 1024)
			s.chunk = 512
		}
		return s
	default:
		s := newScanner(&chunkReader{r: bytes.NewReader(data), n: 333})
		s.buf = make([]byte, 1536)
		return s
	}
}

// scanAll scans data and returns the members and the final error (nil at a clean end).
func scanAll(data []byte, mode scanMode) ([]scanned, error) {
	s := newTestScanner(data, mode)
	var out []scanned
	for {
		m, err := s.Next()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out = append(out, copyMember(m))
		if len(out) > 1<<16 {
			return out, errors.New("too many members")
		}
	}
}

// refMember is what archive/tar reports for a member, with its data.
type refMember struct {
	hdr     *tar.Header
	data    []byte
	readErr error
}

// reported says whether our scanner reports members of this archive/tar typeflag.
func reported(flag byte) bool {
	switch flag {
	case tar.TypeXGlobalHeader, 'V', 'M', 'N':
		return false
	}
	return true // unknown typeflags are regular files
}

// refKnown reports whether archive/tar typeflag flag is one the scanner knows; the others are read as
// regular files.
func refKnown(flag byte) bool {
	switch flag {
	case tar.TypeReg, tar.TypeCont, tar.TypeLink, tar.TypeSymlink, tar.TypeChar, tar.TypeBlock,
		tar.TypeDir, tar.TypeFifo, tar.TypeGNUSparse, 'D':
		return true
	}
	return false
}

func readRef(data []byte) ([]refMember, error) {
	tr := tar.NewReader(bytes.NewReader(data))
	var out []refMember
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		if !reported(hdr.Typeflag) {
			continue
		}
		var body []byte
		var rerr error
		if hdr.Size >= 0 && hdr.Size < 1<<24 {
			body, rerr = io.ReadAll(tr)
		} else {
			rerr = errors.New("not read: too large")
		}
		out = append(out, refMember{hdr: hdr, data: body, readErr: rerr})
		if len(out) > 1<<16 {
			return out, errors.New("too many members")
		}
	}
}

// expand returns the logical content of a member from the stream bytes, applying its sparse map.
func expand(data []byte, m scanned) ([]byte, bool) {
	if m.Offset < 0 || m.Stored < 0 || m.Offset > int64(len(data)) || m.Stored > int64(len(data))-m.Offset {
		return nil, false
	}
	phys := data[m.Offset : m.Offset+m.Stored]
	if m.Sparse == nil {
		if m.Size != m.Stored {
			return nil, false
		}
		return phys, true
	}
	if m.Size > 1<<26 {
		return nil, false
	}
	out := make([]byte, m.Size)
	for _, r := range m.Sparse {
		copy(out[r.Offset:r.Offset+r.Length], phys[r.Physical:r.Physical+r.Length])
	}
	return out, true
}

// diffArchiveTar checks that our scanner agrees with archive/tar on data: names, types, sizes, link names,
// metadata, and the data found at the reported offsets.
func diffArchiveTar(t *testing.T, data []byte) {
	t.Helper()
	ref, refErr := readRef(data)
	for _, mode := range []scanMode{modeReaderAt, modeReaderAtS, modeReader} {
		got, err := scanAll(data, mode)
		if err != nil && !errors.Is(err, ErrTarHeader) && !errors.Is(err, ErrTarTruncated) &&
			!errors.Is(err, ErrNotTar) && !errors.Is(err, ErrTarLimit) {
			t.Fatalf("mode %d: unexpected error kind: %v", mode, err)
		}
		n := min(len(got), len(ref))
		for i := 0; i < n; i++ {
			if msg := compareMember(data, got[i], ref[i]); msg != "" {
				t.Fatalf("mode %d: member %d (%.40q): %.300s", mode, i, ref[i].hdr.Name, msg)
			}
		}
		switch {
		case len(got) < len(ref):
			// We stopped early: only acceptable with an error, and only where archive/tar cannot read
			// that member's data either (sparse maps that overrun the data, truncated data).
			if err == nil {
				t.Fatalf("mode %d: %d members, archive/tar has %d, and no error", mode, len(got), len(ref))
			}
			if ref[len(got)].readErr == nil && !errors.Is(err, ErrTarLimit) {
				t.Fatalf("mode %d: error %.200v at member %d (%.40q) that archive/tar reads fine", mode, err,
					len(got), ref[len(got)].hdr.Name)
			}
		case len(got) > len(ref):
			if refErr == nil {
				t.Fatalf("mode %d: %d members, archive/tar ends cleanly after %d", mode, len(got), len(ref))
			}
		}
		// All modes agree with each other.
		if mode != modeReaderAt {
			first, ferr := scanAll(data, modeReaderAt)
			if len(first) != len(got) || (ferr == nil) != (err == nil) {
				t.Fatalf("mode %d: %d members err=%v, ReaderAt mode: %d members err=%v", mode, len(got), err,
					len(first), ferr)
			}
		}
	}
}

func compareMember(data []byte, g scanned, r refMember) string {
	h := r.hdr
	if g.Name != h.Name {
		return fmt.Sprintf("name %.80q, archive/tar %.80q", g.Name, h.Name)
	}
	flag := h.Typeflag
	if flag == tar.TypeGNUSparse || flag == tar.TypeCont {
		flag = tar.TypeReg
	}
	if flag == 'D' {
		flag = tar.TypeDir
	}
	if !refKnown(flag) && g.Type != TypeRegular {
		return fmt.Sprintf("unknown type %q read as %v, want a regular file", flag, g.Type)
	}
	gflag := g.Flag
	if gflag == 'S' || gflag == '7' {
		gflag = '0'
	}
	if gflag == 'D' {
		gflag = '5'
	}
	if gflag != flag {
		return fmt.Sprintf("type %q, archive/tar %q", g.Flag, h.Typeflag)
	}
	if g.Link != h.Linkname {
		return fmt.Sprintf("link %.80q, archive/tar %.80q", g.Link, h.Linkname)
	}
	// ACL records (text, or the binary access ACL) make the scanner add an xattr and take the
	// permission bits from the ACL, as extraction does; TestScanTextACLs and TestACLMode check those.
	acl := false
	for k := range h.PAXRecords {
		acl = acl || strings.HasPrefix(k, "SCHILY.acl.") || k == "SCHILY.xattr."+posixacl.AccessName
	}
	if !acl && g.Mode != uint32(h.Mode)&0o7777 || g.UID != uint32(h.Uid) || g.GID != uint32(h.Gid) {
		return fmt.Sprintf("mode/uid/gid %o/%d/%d, archive/tar %o/%d/%d", g.Mode, g.UID, g.GID, h.Mode, h.Uid, h.Gid)
	}
	if g.Sec != h.ModTime.Unix() || int(g.Nsec) != h.ModTime.Nanosecond() {
		return fmt.Sprintf("mtime %d.%09d, archive/tar %v", g.Sec, g.Nsec, h.ModTime)
	}
	if g.Type == TypeChar || g.Type == TypeBlock {
		if g.Major != uint32(h.Devmajor) || g.Minor != uint32(h.Devminor) {
			return fmt.Sprintf("dev %d,%d, archive/tar %d,%d", g.Major, g.Minor, h.Devmajor, h.Devminor)
		}
	}
	var names []string
	libarchive := false
	for k := range h.PAXRecords {
		if name, ok := strings.CutPrefix(k, "SCHILY.xattr."); ok && name != "" && h.PAXRecords[k] != "" {
			names = append(names, name)
		}
		if strings.HasPrefix(k, "LIBARCHIVE.xattr.") {
			libarchive = true
		}
	}
	slices.Sort(names)
	var want []string
	for _, n := range names {
		want = append(want, n+"="+h.PAXRecords["SCHILY.xattr."+n])
	}
	if !libarchive && !acl && !slices.Equal(g.Xattrs, want) {
		return fmt.Sprintf("xattrs %q, archive/tar %q", g.Xattrs, want)
	}
	if g.Type != TypeRegular {
		return ""
	}
	if g.Size != h.Size {
		return fmt.Sprintf("size %d, archive/tar %d", g.Size, h.Size)
	}
	if r.readErr != nil {
		return ""
	}
	body, ok := expand(data, g)
	if !ok {
		return fmt.Sprintf("data range %d+%d (size %d) outside the stream of %d bytes", g.Offset, g.Stored,
			g.Size, len(data))
	}
	if !bytes.Equal(body, r.data) {
		return fmt.Sprintf("data at %d differs from archive/tar's (%d vs %d bytes)", g.Offset, len(body), len(r.data))
	}
	return ""
}
