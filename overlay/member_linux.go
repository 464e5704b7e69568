package overlay

import "github.com/imgfs/imgfs/index"

// MemberFile returns the data of regular file id of layer l read as the view reads its own files:
// bounded to the member, sparse maps applied, holes found by SeekData. Views stacked on this one that
// show a layer's members by themselves (package layertree) open them with it.
func MemberFile(l Layer, id index.ID) File {
	return &memberFile{l: l, id: id, size: l.Entry(id).Size}
}

// MemberBlocks returns st_blocks (512-byte units) of regular file id of layer l as the view reports
// them: ceil(size/512), or for a sparse member the 4 KiB blocks its data touches.
func MemberBlocks(l Layer, id index.ID) int64 {
	e := l.Entry(id)
	if e.Type != index.TypeRegular || e.Size <= 0 {
		return 0
	}
	b := (e.Size + 511) / 512
	if e.Flags&index.FlagSparse != 0 {
		b = sparseBlocks(l, id, b)
	}
	return b
}
