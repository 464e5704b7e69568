package layerdiff

import (
	"archive/tar"
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/imgfs/imgfs/export"
	"github.com/imgfs/imgfs/index"
	"github.com/imgfs/imgfs/internal/ovlfmt"
	"github.com/imgfs/imgfs/overlay"
)

// Options configure Write.
type Options struct {
	// SourceDateEpoch, when set, clamps modification times: a time later than it is written as it. It is
	// also the modification time of whiteouts, which is Unix 0 without it.
	SourceDateEpoch *time.Time
	// Logger receives warnings about what a layer cannot hold (sockets, xattr names with "="), which is
	// skipped; nil discards them.
	Logger *slog.Logger
}

// Stats say what Write wrote.
type Stats struct {
	// Entries is the number of tar members written, whiteouts included (PAX extended headers not counted).
	Entries int
	// Empty is set when the upper directory holds no change a layer can carry: no member was written
	// (only the end-of-archive marker), and a commit adds no layer.
	Empty bool
}

// Write writes to w the OCI layer (an uncompressed tar stream) that turns lower (nil: an empty
// lower view) into lower with upperDir on top, upperDir being an upper directory in the kernel
// overlayfs format (see Changes). The same upper directory content always gives the same bytes.
//
// Every entry of the upper directory is written with its full state: a file whose metadata alone
// changed is written whole, and a directory that is there only because a child changed is written with
// its own (copied-up) attributes. The root itself has no member. Members are written depth first: a
// directory, then its whiteouts, then its other children in bytewise order of name. An overlay whiteout
// becomes ".wh.NAME" when NAME exists in the lower view where the layer applies (it is dropped
// otherwise, also below an opaque directory, which already hides it); an opaque upper directory that is
// also a directory in the lower view gets ".wh..wh..opq" (it was deleted and recreated); a brand-new
// directory never does. A rename is the new path plus a whiteout of the old one, as overlayfs records
// it. Names starting with ".wh..wh." (AUFS metadata, or temporaries a writable View left behind) are
// skipped with a warning; other names starting with ".wh." cannot be stored and are refused with an
// error wrapping ErrInvalid.
//
// Members: names without "./", directories ending in "/"; PAX format; numeric uid and gid, no user or
// group names; permission, setuid, setgid and sticky bits; modification times with nanoseconds, no
// access or change times; symlink targets verbatim; devices with their numbers; FIFOs; extended
// attributes as SCHILY.xattr.* records (an empty value is skipped with a warning: pax reads an empty
// record as a deletion), except overlayfs's (trusted.overlay.*, user.overlay.*) and
// imgfs's (trusted.imgfs.*, user.imgfs.*). Files with several names in the upper directory (same inode)
// are written once, under the first name met, and later names are hard links to it. Whiteouts are
// empty regular files, mode 0, owner 0:0. Sockets are skipped with a warning (and, when they replace a
// lower path, written as a whiteout of it). File data is streamed from the upper directory; sparse files
// are written in full. ctx is checked between members and while copying data. On error the stream
// written so far is incomplete.
func Write(ctx context.Context, w io.Writer, lower *overlay.View, upperDir string, opts Options) (Stats, error) {
	root, err := openChangeRoot(upperDir)
	if err != nil {
		return Stats{}, fmt.Errorf("writing the layer of %s: %w", upperDir, err)
	}
	defer root.close()
	bw := bufio.NewWriterSize(w, 64<<10)
	lw := &layerWriter{
		v:     lower,
		tw:    tar.NewWriter(bw),
		log:   opts.Logger,
		sde:   opts.SourceDateEpoch,
		epoch: time.Unix(0, 0),
		links: map[layerInode]string{},
		buf:   make([]byte, 128<<10),
	}
	if lw.log == nil {
		lw.log = slog.New(slog.DiscardHandler)
	}
	if lw.sde != nil {
		lw.epoch = *lw.sde
	}
	err = lw.dir(ctx, root, "", rootLower(lower), false)
	if err == nil {
		err = lw.tw.Close()
	}
	if err == nil {
		err = bw.Flush()
	}
	st := Stats{Entries: lw.n, Empty: lw.n == 0}
	if err != nil {
		return st, fmt.Errorf("writing the layer of %s: %w", upperDir, err)
	}
	return st, nil
}

// layerWriter is the state of one Write.
type layerWriter struct {
	v     *overlay.View
	tw    *tar.Writer
	log   *slog.Logger
	sde   *time.Time
	epoch time.Time // the modification time of whiteouts
	links map[layerInode]string
	buf   []byte
	n     int
}

// layerInode identifies a file of the upper directory with several names.
type layerInode struct{ dev, ino uint64 }

// dir writes the children of upper directory d, whose member name is prefix ("" for the root, else
// "a/b/"); low is its place in the lower view, and opaque says whether it gets an opaque marker.
func (lw *layerWriter) dir(ctx context.Context, d *changeDir, prefix string, low changeLower, opaque bool) error {
	ents, err := d.list(ctx)
	if err != nil {
		return err
	}
	if opaque {
		if err := lw.whiteout(prefix + ovlfmt.OpaqueMarker); err != nil {
			return err
		}
	}
	for i := range ents {
		e := &ents[i]
		switch {
		case changeMetaName(e.name):
			lw.log.Warn("skipping AUFS metadata or a leftover temporary", "path", d.join(e.name))
			continue
		case e.whiteout:
		case e.typ == 0:
			lw.log.Warn("skipping a socket: a layer cannot hold one", "path", d.join(e.name))
		case strings.HasPrefix(e.name, ovlfmt.WhiteoutPrefix):
			return fmt.Errorf("%s: names starting with %q are reserved for whiteouts: %w", d.join(e.name),
				ovlfmt.WhiteoutPrefix, overlay.ErrInvalid)
		default:
			continue
		}
		if !low.merged {
			continue // nothing of the lower directory shows through: there is nothing to white out
		}
		_, found, err := low.lookup(lw.v, e.name)
		if err != nil {
			return fmt.Errorf("%s: %w", d.join(e.name), err)
		}
		if found {
			if err := lw.whiteout(prefix + ovlfmt.WhiteoutPrefix + e.name); err != nil {
				return err
			}
		}
	}
	for i := range ents {
		e := &ents[i]
		if e.whiteout || e.typ == 0 || changeMetaName(e.name) {
			continue
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		name := prefix + e.name
		if err := lw.entry(ctx, d, e, name); err != nil {
			return err
		}
		if e.typ != index.TypeDir {
			continue
		}
		var sub changeLower
		if low.merged {
			a, found, err := low.lookup(lw.v, e.name)
			if err != nil {
				return fmt.Errorf("%s: %w", d.join(e.name), err)
			}
			sub = low.sub(e, a, found)
		}
		sd, err := d.sub(e)
		if err != nil {
			return err
		}
		err = lw.dir(ctx, sd, name+"/", sub, sub.dir && e.opaque)
		sd.close()
		if err != nil {
			return err
		}
	}
	return nil
}

// whiteout writes a whiteout or opaque marker member.
func (lw *layerWriter) whiteout(name string) error {
	return lw.write(&tar.Header{Name: name, Typeflag: tar.TypeReg, ModTime: lw.epoch, Format: tar.FormatPAX})
}

// write writes one member's header.
func (lw *layerWriter) write(h *tar.Header) error {
	if err := lw.tw.WriteHeader(h); err != nil {
		return fmt.Errorf("writing member %s: %w", h.Name, err)
	}
	lw.n++
	return nil
}

// mtime returns a modification time clamped to SOURCE_DATE_EPOCH.
func (lw *layerWriter) mtime(sec int64, nsec uint32) time.Time {
	t := time.Unix(sec, int64(nsec))
	if lw.sde != nil && t.After(*lw.sde) {
		return *lw.sde
	}
	return t
}

// entry writes the member of upper entry e of d, called name, with its data.
func (lw *layerWriter) entry(ctx context.Context, d *changeDir, e *changeEntry, name string) error {
	h := &tar.Header{
		Name: name, Mode: int64(e.mode), Uid: int(e.uid), Gid: int(e.gid),
		ModTime: lw.mtime(e.mtimeSec, e.mtimeNsec), Format: tar.FormatPAX,
	}
	if e.typ != index.TypeDir && e.nlink > 1 {
		k := layerInode{e.dev, e.ino}
		if first, ok := lw.links[k]; ok {
			h.Typeflag, h.Linkname = tar.TypeLink, first
			return lw.write(h)
		}
		lw.links[k] = name
	}
	xs, err := d.xattrs(e)
	if err != nil {
		return err
	}
	for _, x := range xs {
		if strings.IndexByte(x.Name, '=') >= 0 {
			lw.log.Warn("skipping an xattr whose name a tar cannot hold", "path", d.join(e.name), "xattr", x.Name)
			continue
		}
		if len(x.Value) == 0 {
			lw.log.Warn(export.EmptyXattrNote, "path", d.join(e.name), "xattr", x.Name)
			continue
		}
		if h.PAXRecords == nil {
			h.PAXRecords = map[string]string{}
		}
		h.PAXRecords["SCHILY.xattr."+x.Name] = string(x.Value)
	}
	switch e.typ {
	case index.TypeDir:
		h.Typeflag = tar.TypeDir
		h.Name += "/"
	case index.TypeSymlink:
		h.Typeflag = tar.TypeSymlink
		if h.Linkname, err = d.readlink(e); err != nil {
			return err
		}
	case index.TypeChar, index.TypeBlock:
		h.Typeflag = tar.TypeChar
		if e.typ == index.TypeBlock {
			h.Typeflag = tar.TypeBlock
		}
		h.Devmajor, h.Devminor = int64(e.devmajor), int64(e.devminor)
	case index.TypeFIFO:
		h.Typeflag = tar.TypeFifo
	case index.TypeRegular:
		h.Typeflag, h.Size = tar.TypeReg, e.size
		return lw.file(ctx, d, e, h)
	}
	return lw.write(h)
}

// file writes regular file e of d with header h, streaming its data.
func (lw *layerWriter) file(ctx context.Context, d *changeDir, e *changeEntry, h *tar.Header) error {
	f, err := d.open(e)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := lw.write(h); err != nil {
		return err
	}
	n, err := io.CopyBuffer(lw.tw, &layerCtxReader{ctx: ctx, r: io.LimitReader(f, e.size)}, lw.buf)
	if err != nil {
		return fmt.Errorf("copying %s: %w", d.join(e.name), err)
	}
	if n != e.size {
		return fmt.Errorf("copying %s: it shrank from %d to %d bytes while being read", d.join(e.name), e.size, n)
	}
	return nil
}

// layerCtxReader is a reader that fails once its context is done.
type layerCtxReader struct {
	ctx context.Context
	r   io.Reader
}

func (r *layerCtxReader) Read(p []byte) (int, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, err
	}
	return r.r.Read(p)
}
