package overlay

import (
	"iter"
	"sort"
	"sync"

	"github.com/imgfs/imgfs/index"
)

// SparseLayer is the optional ability of a Layer to tell where the data of its sparse members lies
// (*index.Layer has it). Without it a sparse member counts as data from end to end: its holes read as
// zeros all the same, but st_blocks, SEEK_HOLE and export show no holes.
type SparseLayer interface {
	// SparseRegions yields the data regions of member id in ascending order when it is sparse
	// (index.FlagSparse), nothing otherwise.
	SparseRegions(id index.ID) iter.Seq[index.SparseRegion]
}

// DataSeeker is the optional ability of a File to find its data and its holes, as lseek(2) does with
// SEEK_DATA and SEEK_HOLE. The files of a View have it.
type DataSeeker interface {
	// SeekData returns the first offset at or after off that holds data (hole false) or lies in a
	// hole (hole true; the end of the file counts as one). ok is false when there is none: off is at
	// or past the end, or only holes follow it when data is asked for (lseek's ENXIO).
	SeekData(off int64, hole bool) (pos int64, ok bool, err error)
}

var _ DataSeeker = (*memberFile)(nil)

// sparseBlockSize is the block size that st_blocks of sparse files are counted in: ext4's, where an
// extracted sparse file allocates every 4 KiB block that its data touches.
const sparseBlockSize = 4096

// sparseBlocks returns st_blocks (512-byte units) of sparse member id of l: the 4 KiB blocks that its
// data regions touch, each counted once. dflt is returned when l cannot tell.
func sparseBlocks(l Layer, id index.ID, dflt int64) int64 {
	sl, ok := l.(SparseLayer)
	if !ok {
		return dflt
	}
	var blocks, last int64 = 0, -1 // last: the last block counted
	for r := range sl.SparseRegions(id) {
		if r.Length <= 0 {
			continue
		}
		first, end := r.Offset/sparseBlockSize, (r.Offset+r.Length-1)/sparseBlockSize
		if first <= last {
			first = last + 1
		}
		if end >= first {
			blocks += end - first + 1
			last = end
		}
	}
	return blocks * (sparseBlockSize / 512)
}

// sparseMap is the data map of an open member, loaded once.
type sparseMap struct {
	once    sync.Once
	sparse  bool                 // the member is sparse and the layer tells where its data lies
	regions []index.SparseRegion // its data regions, adjacent ones merged
}

func (m *sparseMap) load(l Layer, id index.ID) {
	m.once.Do(func() {
		sl, ok := l.(SparseLayer)
		if !ok || l.Entry(id).Flags&index.FlagSparse == 0 {
			return
		}
		m.sparse = true
		for r := range sl.SparseRegions(id) {
			if r.Length <= 0 {
				continue
			}
			if k := len(m.regions); k > 0 && m.regions[k-1].Offset+m.regions[k-1].Length == r.Offset {
				m.regions[k-1].Length += r.Length
				continue
			}
			m.regions = append(m.regions, r)
		}
	})
}

// SeekData answers lseek's SEEK_DATA and SEEK_HOLE from the member's sparse map; a member that is not
// sparse is data from end to end.
func (f *memberFile) SeekData(off int64, hole bool) (int64, bool, error) {
	if off < 0 || off >= f.size {
		return 0, false, nil
	}
	f.holes.load(f.l, f.id)
	if !f.holes.sparse {
		if hole {
			return f.size, true, nil
		}
		return off, true, nil
	}
	rs := f.holes.regions
	i := sort.Search(len(rs), func(i int) bool { return rs[i].Offset+rs[i].Length > off })
	if !hole {
		if i == len(rs) {
			return 0, false, nil
		}
		return max(off, rs[i].Offset), true, nil
	}
	if i == len(rs) || off < rs[i].Offset {
		return off, true, nil
	}
	return min(rs[i].Offset+rs[i].Length, f.size), true, nil
}
