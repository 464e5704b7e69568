package archive

import (
	"archive/tar"
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
)

// maxMembers bounds the members of an outer tar. Image archives hold a handful of members per layer; a
// tar with more is a plain tarball (the scan stops there, with errManyMembers).
const maxMembers = 20000

// scanTar reads the member headers of the tar in r (size bytes), skipping member data by seeking, and
// returns the members by cleaned name (the last of duplicate names wins). Members with a ".." component
// and sparse members are ignored with a warning.
func scanTar(ctx context.Context, r io.ReaderAt, size int64, log *slog.Logger) (map[string]*member, error) {
	sr := io.NewSectionReader(r, 0, size)
	tr := tar.NewReader(sr)
	members := map[string]*member{}
	for n := 0; ; n++ {
		if n%64 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
		hdr, err := tr.Next()
		if err == io.EOF {
			break // a tar of no members (end-of-archive blocks only) is an empty plain tarball
		}
		if err != nil {
			if n == 0 {
				return nil, errorf(ErrFormat, "not an image archive or a tar (%v)", err)
			}
			if errors.Is(err, io.ErrUnexpectedEOF) {
				return nil, invalidf("tar truncated after %d members", n)
			}
			return nil, invalidf("tar member %d: %v", n+1, err)
		}
		if n >= maxMembers {
			return members, errManyMembers
		}
		name, ok := cleanMember(hdr.Name)
		if !ok {
			log.Warn("ignoring tar member with a \"..\" component", "name", clip(hdr.Name))
			continue
		}
		if name == "" {
			continue
		}
		pos, err := sr.Seek(0, io.SeekCurrent)
		if err != nil {
			return nil, err
		}
		m := &member{off: pos}
		switch hdr.Typeflag {
		case tar.TypeReg:
			if isSparse(hdr) {
				log.Warn("ignoring sparse tar member", "name", name)
				continue
			}
			m.kind, m.size = memberFile, hdr.Size
			if hdr.Size < 0 || pos+hdr.Size > size {
				return nil, invalidf("tar member %q: truncated (%d bytes at %d, tar is %d bytes)", clip(name), hdr.Size, pos, size)
			}
		case tar.TypeDir:
			m.kind = memberDir
		case tar.TypeSymlink:
			m.kind, m.link = memberSymlink, hdr.Linkname
		case tar.TypeLink:
			m.kind = memberHardlink
			if t, ok := cleanMember(hdr.Linkname); ok && t != "" {
				m.link = t
			}
		case tar.TypeGNUSparse:
			log.Warn("ignoring sparse tar member", "name", name)
			continue
		default:
			m.kind = memberOther
		}
		members[name] = m
	}
	return members, nil
}

// isSparse says whether a header describes a PAX-format sparse file, whose data is not one byte range.
func isSparse(hdr *tar.Header) bool {
	for k := range hdr.PAXRecords {
		if strings.HasPrefix(k, "GNU.sparse.") {
			return true
		}
	}
	return false
}
