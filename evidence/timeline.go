package evidence

import (
	"bufio"
	"context"
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"strconv"

	"github.com/imgfs/imgfs/index"
	"github.com/imgfs/imgfs/overlay"
)

// TimelineOptions configure WriteTimeline.
type TimelineOptions struct {
	// NoMD5 writes 0 in the MD5 field instead of hashing regular files (the layers' data is then not
	// read, only their headers).
	NoMD5 bool
	// Progress, when set, is called every few thousand members with the layer (0 is the bottom one)
	// and the members done in it.
	Progress func(layer int, members int64)
}

// TimelineStats counts what a timeline holds.
type TimelineStats struct {
	Members int64 // member lines
	Deleted int64 // of which marked "(deleted)": whiteout markers, and members hidden and now absent
	Realloc int64 // of which marked "(deleted-realloc)": members hidden or replaced, their path in use again
	History int64 // history event lines
}

// Status suffixes of bodyfile names, as the Sleuth Kit's fls writes them for an unallocated name whose
// metadata is unallocated, or allocated again to another file.
const (
	suffixDeleted = " (deleted)"
	suffixRealloc = " (deleted-realloc)"
)

// WriteTimeline writes a Sleuth Kit bodyfile (3.x: MD5|name|inode|mode_as_string|UID|GID|size|atime|
// mtime|ctime|crtime) of every member of every layer, in layer and stream order, then one line per
// entry of the config's history, to w. It reads each layer's stream once.
//
//   - name is the member's path in the image ("/etc/passwd"; a member whose name leaves the root, which
//     no extractor writes, keeps its stored name), " -> target" for symlinks, and the Sleuth Kit's
//     deletion marks: " (deleted)" for whiteout markers (".wh.*", and character devices 0/0, the
//     overlayfs form) and for members hidden by a higher
//     layer (whiteout, opaque directory, replaced parent) whose path is absent from the merged view;
//     " (deleted-realloc)" for members hidden or replaced (by a higher layer, or by a later member of
//     the same layer) whose path the merged view shows with another file. Control characters are
//     written '^' (as fls writes them), '%' and '|' as %25 and %7C (mactime decodes them).
//   - inode is "L-N": layer L (1 is the bottom layer) and member N of its tar (1 is the first), so a
//     line names one member; history lines use "0-N" for the config's N-th history entry.
//   - mode_as_string is fls's "name type/ls mode": "r/rrwxr-xr-x", "d/drwxr-xr-x", "l/lrwxrwxrwx",
//     "c/", "b/", "p/"; whiteout markers have the Sleuth Kit's whiteout name type, "w/"; history lines
//     are virtual, "v/v---------".
//   - size: a regular file's, a symlink target's length, a hard link's target's; 0 otherwise.
//   - MD5: of a regular file's content (a hard link: its target's), unless NoMD5; 0 otherwise.
//   - times: unix seconds. mtime from the tar header; atime and ctime from PAX records when present,
//     else 0; crtime 0. History lines carry their created time as mtime and crtime, and created_by and
//     the comment in the name.
func WriteTimeline(ctx context.Context, w io.Writer, img Layered, opts TimelineOptions) (TimelineStats, error) {
	var st TimelineStats
	if err := img.check(); err != nil {
		return st, err
	}
	bw := bufio.NewWriterSize(w, 256<<10)
	tl := &timeline{img: img, w: bw, opts: opts, buf: make([]byte, 1<<20)}
	for j := range img.Layers {
		if err := tl.layer(ctx, j, &st); err != nil {
			return st, fmt.Errorf("layer %d (%s): %w", j+1, img.Desc.Layers[j].Digest, err)
		}
	}
	if err := tl.history(&st); err != nil {
		return st, err
	}
	return st, bw.Flush()
}

type timeline struct {
	img  Layered
	w    *bufio.Writer
	opts TimelineOptions
	buf  []byte
	line []byte
}

// layer writes the lines of layer j's members.
func (tl *timeline) layer(ctx context.Context, j int, st *TimelineStats) error {
	l := tl.img.Layers[j]
	// Data offsets of the regular files that hard links of this layer name, whose MD5 the links repeat.
	targets := map[int64]string{}
	for _, h := range l.Hardlinks() {
		if t := l.Entry(h).Link; t != index.NoID && l.Entry(t).Type == index.TypeRegular {
			targets[l.Entry(t).Offset] = ""
		}
	}
	var n int64
	return l.Scan(ctx, func(m *index.Member, data io.Reader) error {
		n++
		if tl.opts.Progress != nil && n%4096 == 0 {
			tl.opts.Progress(j, n)
		}
		sum, size := "0", m.Size
		if m.Type == index.TypeRegular && !tl.opts.NoMD5 {
			h := md5.New()
			if _, err := io.CopyBuffer(h, data, tl.buf); err != nil {
				return err
			}
			sum = hex.EncodeToString(h.Sum(nil))
			if _, ok := targets[m.Offset]; ok {
				targets[m.Offset] = sum
			}
		}
		p, inRoot := index.CleanPath(m.Name)
		name := m.Name
		if inRoot {
			name = "/" + p
		}
		comps := splitNorm(p)
		// Whiteout markers: ".wh.*" names, and overlayfs-style character devices 0/0.
		marker := inRoot && len(comps) > 0 && (isUnionMarker(comps[len(comps)-1]) ||
			m.Type == index.TypeChar && m.Devmajor == 0 && m.Devminor == 0)
		metaType, nameType, mode := typeChars(m.Type), typeChars(m.Type), m.Mode
		switch m.Type {
		case index.TypeSymlink:
			size, mode = int64(len(m.LinkName)), 0o777
			name += " -> " + m.LinkName
		case index.TypeHardlink:
			metaType, nameType = 'r', 'r'
			s, sz := tl.hardlink(j, comps, m, targets)
			size = sz
			if !tl.opts.NoMD5 {
				sum = s
			}
		}
		// Below an AUFS metadata directory (".wh..wh.plnk/..."): never shown by the union.
		meta := false
		for _, c := range comps[:max(len(comps)-1, 0)] {
			meta = meta || isUnionMarker(c)
		}
		var status string
		switch {
		case !inRoot || marker || meta:
			status = suffixDeleted
		default:
			kept := tl.kept(l, comps, m)
			if kept && !tl.hiddenAbove(j, comps, m.Type == index.TypeDir) {
				// A hard link whose target the union cannot resolve is removed from the view.
				if m.Type == index.TypeHardlink && !tl.present(comps) {
					status = suffixDeleted
				}
				break
			}
			status = suffixDeleted
			if tl.present(comps) {
				status = suffixRealloc
			}
		}
		if marker {
			nameType = 'w'
		}
		switch status {
		case suffixDeleted:
			st.Deleted++
		case suffixRealloc:
			st.Realloc++
		}
		st.Members++
		var at, ct int64
		if m.HasAtime {
			at = m.AtimeSec
		}
		if m.HasCtime {
			ct = m.CtimeSec
		}
		return tl.put(sum, name+status, fmt.Sprintf("%d-%d", j+1, n), string(nameType)+"/"+lsMode(metaType, mode),
			m.UID, m.GID, size, at, m.MtimeSec, ct, 0)
	})
}

// kept reports whether member m of layer l is the one its table kept for its path (a later member of
// the same path replaces an earlier one; members below a non-directory of the same layer are dropped).
func (tl *timeline) kept(l *index.Layer, comps []string, m *index.Member) bool {
	id := index.ID(0)
	for _, c := range comps {
		next, ok := l.Lookup(id, c)
		if !ok {
			return false
		}
		id = next
	}
	e := l.Entry(id)
	if e.Type != m.Type || e.Flags&index.FlagImplied != 0 {
		return false
	}
	switch e.Type {
	case index.TypeRegular:
		return e.Offset == m.Offset
	case index.TypeDir:
		return true // a directory listed twice keeps its children; only its attributes are replaced
	}
	return e.MtimeSec == m.MtimeSec && e.Mode == m.Mode && e.UID == m.UID && e.GID == m.GID
}

// hiddenAbove reports whether a higher layer than j hides (or replaces) the entry at comps: a whiteout,
// an opaque directory or a non-directory above it, or an entry of its own path (a directory over a
// directory merges and hides nothing).
func (tl *timeline) hiddenAbove(j int, comps []string, isDir bool) bool {
	for k := j + 1; k < len(tl.img.Layers); k++ {
		pr := probeLayer(tl.img.Layers[k], comps)
		if pr.reason != hiddenReasonNone {
			return true
		}
		if pr.entry != index.NoID && !(isDir && tl.img.Layers[k].Entry(pr.entry).Type == index.TypeDir) {
			return true
		}
	}
	return false
}

// present reports whether the merged view has an entry at comps.
func (tl *timeline) present(comps []string) bool {
	n := overlay.Root
	for _, c := range comps {
		a, err := tl.img.View.Lookup(n, c)
		if err != nil {
			return false
		}
		n = a.Node
	}
	return true
}

// hardlink returns the MD5 and size of the content hard link m of layer j (at comps) names: its target
// in the same layer as the table resolved it, else the target path in the union of the layers below.
func (tl *timeline) hardlink(j int, comps []string, m *index.Member, targets map[int64]string) (string, int64) {
	l := tl.img.Layers[j]
	p, ok := index.CleanPath(m.LinkName)
	if !ok {
		return "0", 0
	}
	if id, ok := lookupNorm(l, comps); ok && l.Entry(id).Type == index.TypeHardlink && l.LinkName(id) == p {
		if t := l.Entry(id).Link; t != index.NoID {
			e := l.Entry(t)
			if s := targets[e.Offset]; s != "" {
				return s, e.Size
			}
			return "0", e.Size
		}
	} else if id, ok := lookupNorm(l, splitNorm(p)); ok && l.Entry(id).Type == index.TypeRegular {
		// A link member the table did not keep: its target as it stands in this layer.
		e := l.Entry(id)
		if s := targets[e.Offset]; s != "" {
			return s, e.Size
		}
		return "0", e.Size
	}
	// Below: the path in the union of the lower layers.
	f := visibleBelow(tl.img, j, splitNorm(p))
	if f == noFrame {
		return "0", 0
	}
	newHash := md5.New
	if tl.opts.NoMD5 {
		newHash = nil
	}
	sum, size, err := contentHash(tl.img, f, newHash)
	if err != nil || sum == "" {
		return "0", size
	}
	return sum, size
}

// lookupNorm finds the entry at comps in one layer.
func lookupNorm(l overlay.Layer, comps []string) (index.ID, bool) {
	id := index.ID(0)
	for _, c := range comps {
		next, ok := l.Lookup(id, c)
		if !ok {
			return index.NoID, false
		}
		id = next
	}
	return id, true
}

// contentHash hashes the content of entry f (a regular file, or a hard link in its layer) and returns
// its size; with a nil newHash it only returns the size.
func contentHash(img Layered, f frameRef, newHash func() hash.Hash) (string, int64, error) {
	l := img.Layers[f.layer]
	e := l.Entry(f.id)
	if e.Type == index.TypeHardlink && e.Link != index.NoID {
		f.id, e = e.Link, l.Entry(e.Link)
	}
	if e.Type != index.TypeRegular {
		return "", 0, nil
	}
	if newHash == nil {
		return "", e.Size, nil
	}
	h := newHash()
	if _, err := io.Copy(h, io.NewSectionReader(entryReader{l, f.id}, 0, e.Size)); err != nil {
		return "", e.Size, err
	}
	return hex.EncodeToString(h.Sum(nil)), e.Size, nil
}

// history writes one virtual line per history entry of the config.
func (tl *timeline) history(st *TimelineStats) error {
	hist := tl.img.Desc.Config.History
	layer := 0
	for i, h := range hist {
		where := "empty layer"
		if !h.EmptyLayer {
			layer++
			where = fmt.Sprintf("layer %d", layer)
			if layer <= len(tl.img.Desc.Layers) {
				where += " " + string(tl.img.Desc.Layers[layer-1].Digest)
			}
		}
		name := fmt.Sprintf("[image history %d/%d, %s] %s", i+1, len(hist), where, h.CreatedBy)
		if h.Comment != "" {
			name += " (comment: " + h.Comment + ")"
		}
		if h.Author != "" {
			name += " (author: " + h.Author + ")"
		}
		var created int64
		if h.Created != nil {
			created = h.Created.Unix()
		}
		if err := tl.put("0", name, fmt.Sprintf("0-%d", i+1), "v/v---------", 0, 0, 0, 0, created, 0, created); err != nil {
			return err
		}
		st.History++
	}
	return nil
}

// put writes one bodyfile line.
func (tl *timeline) put(md5sum, name, inode, mode string, uid, gid uint32, size, atime, mtime, ctime, crtime int64) error {
	b := tl.line[:0]
	b = append(b, md5sum...)
	b = append(b, '|')
	b = appendBodyName(b, name)
	b = append(b, '|')
	b = append(b, inode...)
	b = append(b, '|')
	b = append(b, mode...)
	for _, v := range []int64{int64(uid), int64(gid), size, atime, mtime, ctime, crtime} {
		b = append(b, '|')
		b = strconv.AppendInt(b, v, 10)
	}
	b = append(b, '\n')
	tl.line = b
	_, err := tl.w.Write(b)
	return err
}

// appendBodyName appends a name as a bodyfile field: control characters become '^', as fls writes
// them (mactime cannot read a name with a line break), and '%' and '|' are written %25 and %7C, which
// mactime decodes, so that no name can break the line or its fields.
func appendBodyName(b []byte, name string) []byte {
	for i := 0; i < len(name); i++ {
		switch c := name[i]; {
		case c == '%':
			b = append(b, "%25"...)
		case c == '|':
			b = append(b, "%7C"...)
		case c < 0x20 || c == 0x7f:
			b = append(b, '^')
		default:
			b = append(b, c)
		}
	}
	return b
}

// typeChars returns the Sleuth Kit's one-letter name of a member type ('r' regular, 'd', 'l', 'c',
// 'b', 'p', 'h' socket).
func typeChars(t index.Type) byte {
	switch t {
	case index.TypeRegular, index.TypeHardlink:
		return 'r'
	case index.TypeDir:
		return 'd'
	case index.TypeSymlink:
		return 'l'
	case index.TypeChar:
		return 'c'
	case index.TypeBlock:
		return 'b'
	case index.TypeFIFO:
		return 'p'
	case index.TypeSocket:
		return 'h'
	}
	return '-'
}
