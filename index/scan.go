package index

import (
	"context"
	"fmt"
	"io"
)

// Member is one member of a layer's tar stream as it is stored, in stream order (Layer.Scan): every
// member, also those the table dropped or a later member of the same path replaced.
type Member struct {
	Name      string // as stored (PAX path, GNU long name, ustar prefix/name); not normalised
	LinkName  string // as stored
	Flag      byte   // typeflag, after the legacy rule that '\x00' with a trailing slash is a directory
	Type      Type
	Mode      uint32 // 07777 bits
	UID, GID  uint32
	Size      int64 // regular files: logical size (sparse: expanded); 0 for the other types
	MtimeSec  int64
	MtimeNsec uint32
	// HasAtime and HasCtime say that the member carries PAX atime and ctime records.
	HasAtime, HasCtime   bool
	AtimeSec, CtimeSec   int64
	AtimeNsec, CtimeNsec uint32
	Devmajor, Devminor   uint32
	Header               int64 // stream offset of the member's first header block (its PAX/GNU headers)
	Offset               int64 // stream offset of the first data byte; the table's Entry.Offset
	Sparse               bool  // stored sparse; the data Scan hands out is the expanded content
	Xattrs               []Xattr
}

// Scan reads the layer's uncompressed stream once, from its start, and calls fn with every member in
// order and a reader of its data (the logical content of a regular file, holes of sparse files as
// zeros; empty for other types). fn may read the data or not; what it leaves is skipped. The member
// and the reader are valid until fn returns. A tar error is reported with its stream offset; fn's
// error stops the scan and is returned as it is.
func (l *Layer) Scan(ctx context.Context, fn func(m *Member, data io.Reader) error) error {
	s := newScannerAt(l.stream, 0, l.stream.Size())
	var m Member
	for i := 0; ; i++ {
		if i&255 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		tm, err := s.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("scanning layer: %w", err)
		}
		m = Member{
			Name: string(tm.Name), LinkName: string(tm.LinkName), Flag: tm.Flag, Type: tm.Type,
			Mode: tm.Mode, UID: tm.UID, GID: tm.GID, Size: tm.Size, MtimeSec: tm.MtimeSec, MtimeNsec: tm.MtimeNsec,
			HasAtime: tm.times[0].set, AtimeSec: tm.times[0].sec, AtimeNsec: tm.times[0].nsec,
			HasCtime: tm.times[1].set, CtimeSec: tm.times[1].sec, CtimeNsec: tm.times[1].nsec,
			Devmajor: tm.Devmajor, Devminor: tm.Devminor, Header: tm.Header, Offset: tm.Offset,
			Sparse: tm.Sparse != nil,
		}
		for _, x := range tm.Xattrs {
			m.Xattrs = append(m.Xattrs, Xattr{Name: string(x.Name), Value: append([]byte(nil), x.Value...)})
		}
		var data io.Reader = &memberData{s: s}
		switch {
		case tm.Type != TypeRegular:
			data = eofReader{}
		case tm.Sparse != nil:
			data = &sparseData{phys: data, regions: tm.Sparse, size: tm.Size}
		default:
			data = io.LimitReader(data, tm.Size)
		}
		if err := fn(&m, data); err != nil {
			return err
		}
	}
	return l.src.check()
}

// CleanPath returns name normalised as tables store paths ("./" and leading "/" stripped, "." and
// empty components dropped, ".." resolved lexically; "" is the root), and false when ".." would leave
// the root (the table drops such members).
func CleanPath(name string) (string, bool) {
	p, ok := cleanPath(nil, []byte(name))
	return string(p), ok
}

type eofReader struct{}

func (eofReader) Read([]byte) (int, error) { return 0, io.EOF }

// memberData reads the stored data of the scanner's current member: from the scanner's buffer first,
// then from the stream, so that the stream is read once, in order.
type memberData struct{ s *tarScanner }

func (d *memberData) Read(p []byte) (int, error) {
	s := d.s
	if s.dataSkip <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > s.dataSkip {
		p = p[:s.dataSkip]
	}
	if s.avail() > 0 {
		n := copy(p, s.buf[s.r:s.w])
		s.consume(n)
		s.dataSkip -= int64(n)
		return n, nil
	}
	s.r, s.w = 0, 0
	n, err := s.ra.ReadAt(p, s.base+s.pos)
	s.pos += int64(n)
	s.dataSkip -= int64(n)
	if n > 0 {
		return n, nil
	}
	if err == nil || err == io.EOF {
		err = fmt.Errorf("member data at offset %d: %w", s.m.Offset, ErrTarTruncated)
	}
	return 0, err
}

// sparseData expands the stored regions of a sparse member (phys, in order) into its logical content.
type sparseData struct {
	phys    io.Reader
	regions []SparseRegion
	size    int64
	pos     int64
}

func (d *sparseData) Read(p []byte) (int, error) {
	if d.pos >= d.size {
		return 0, io.EOF
	}
	for len(d.regions) > 0 && d.regions[0].Offset+d.regions[0].Length <= d.pos {
		d.regions = d.regions[1:]
	}
	end := d.size
	if len(d.regions) > 0 {
		r := d.regions[0]
		if d.pos >= r.Offset {
			k := min(int64(len(p)), r.Offset+r.Length-d.pos)
			n, err := io.ReadFull(d.phys, p[:k])
			d.pos += int64(n)
			if err != nil {
				return n, fmt.Errorf("sparse member data: %w", ErrTarTruncated)
			}
			return n, nil
		}
		end = r.Offset
	}
	k := min(int64(len(p)), end-d.pos)
	clear(p[:k])
	d.pos += k
	return int(k), nil
}
