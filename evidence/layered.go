package evidence

import (
	"fmt"
	"strings"

	"github.com/imgfs/imgfs/archive"
	"github.com/imgfs/imgfs/index"
	"github.com/imgfs/imgfs/internal/ovlfmt"
	"github.com/imgfs/imgfs/overlay"
)

// Layered is what evidence reads: an image's descriptors and config, its layers opened (and so
// verified) by package index, bottom first, and their read-only union.
type Layered struct {
	Desc   *archive.Image
	Layers []*index.Layer
	View   *overlay.View
}

func (img Layered) check() error {
	if img.Desc == nil || img.View == nil || len(img.Layers) != len(img.Desc.Layers) {
		return fmt.Errorf("evidence: image without descriptors, view or its %d layers", len(img.Layers))
	}
	return nil
}

// isWhiteoutChar reports an overlayfs-style whiteout: a character device 0/0.
func isWhiteoutChar(e index.Entry) bool {
	return e.Type == index.TypeChar && e.Devmajor == 0 && e.Devminor == 0
}

// isUnionMarker reports a base name the union never shows: a whiteout, an opaque marker or AUFS metadata.
func isUnionMarker(base string) bool { return strings.HasPrefix(base, ovlfmt.WhiteoutPrefix) }

// unionOpaque reports whether directory id of l hides the lower layers' children, as the union reads it:
// it holds ".wh..wh..opq" or carries trusted.overlay.opaque=y.
func unionOpaque(l overlay.Layer, id index.ID) (marker index.ID, ok bool) {
	if m, ok := l.Lookup(id, ovlfmt.OpaqueMarker); ok {
		return m, true
	}
	if l.Entry(id).Flags&index.FlagXattrs != 0 {
		for _, x := range l.Xattrs(id) {
			if x.Name == "trusted."+ovlfmt.Opaque && string(x.Value) == "y" {
				return index.NoID, true
			}
		}
	}
	return index.NoID, false
}

// splitNorm returns the components of a normalised path ("" is the root: none).
func splitNorm(p string) []string {
	if p == "" {
		return nil
	}
	return strings.Split(p, "/")
}

// lsMode renders a type and permission bits as ls -l does ("drwxr-xr-x", "-rwsr-xr-x"), with
// typeChar first.
func lsMode(typeChar byte, mode uint32) string {
	b := []byte("----------")
	b[0] = typeChar
	rwx := "rwxrwxrwx"
	for i := 0; i < 9; i++ {
		if mode&(1<<(8-i)) != 0 {
			b[1+i] = rwx[i]
		}
	}
	special := func(pos int, bit uint32, set, unset byte) {
		if mode&bit == 0 {
			return
		}
		if b[pos] == 'x' {
			b[pos] = set
		} else {
			b[pos] = unset
		}
	}
	special(3, 0o4000, 's', 'S')
	special(6, 0o2000, 's', 'S')
	special(9, 0o1000, 't', 'T')
	return string(b)
}
