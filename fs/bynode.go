package fs

import (
	"sync"

	"github.com/imgfs/imgfs/overlay"
)

// byNodeSlots is how many files, and how many directory snapshots, the requests without a handle keep
// open: enough for a few readers at once (xargs -P, a parallel walk), small enough to scan.
const byNodeSlots = 16

// nodeFiles keeps the files most recently opened by node, for the requests that come without a handle
// when the kernel opens files itself (noOpen): reading a file piece by piece, or seeking its holes,
// opens it once and not at every request. A file is closed when it has left the table and no request
// uses it any more.
type nodeFiles struct {
	mu    sync.Mutex
	next  int
	slots [byNodeSlots]*nodeFile
}

type nodeFile struct {
	node overlay.Node
	f    overlay.File
	size int64
	refs int  // requests using f
	gone bool // left the table: the last request closes f
}

// get returns node's file, opened with open when the table lacks it. The caller calls put when done.
func (t *nodeFiles) get(node overlay.Node, open func(overlay.Node) (overlay.File, error)) (*nodeFile, error) {
	t.mu.Lock()
	for _, nf := range t.slots {
		if nf != nil && nf.node == node {
			nf.refs++
			t.mu.Unlock()
			return nf, nil
		}
	}
	t.mu.Unlock()
	f, err := open(node)
	if err != nil {
		return nil, err
	}
	nf := &nodeFile{node: node, f: f, size: max(f.Size(), 0), refs: 1}
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, other := range t.slots {
		if other != nil && other.node == node {
			// Opened meanwhile by another request: use that one, close ours.
			other.refs++
			_ = f.Close()
			return other, nil
		}
	}
	old := t.slots[t.next]
	t.slots[t.next] = nf
	t.next = (t.next + 1) % byNodeSlots
	if old != nil {
		old.gone = true
		if old.refs == 0 {
			_ = old.f.Close()
		}
	}
	return nf, nil
}

// put ends a request's use of nf.
func (t *nodeFiles) put(nf *nodeFile) {
	t.mu.Lock()
	defer t.mu.Unlock()
	nf.refs--
	if nf.refs == 0 && nf.gone {
		_ = nf.f.Close()
	}
}

// closeAll closes the files that no request uses and empties the table.
func (t *nodeFiles) closeAll() {
	t.mu.Lock()
	defer t.mu.Unlock()
	for i, nf := range t.slots {
		if nf != nil {
			nf.gone = true
			if nf.refs == 0 {
				_ = nf.f.Close()
			}
		}
		t.slots[i] = nil
	}
}

// snapshotBudget bounds the entries of the snapshots that nodeDirs keeps (16 bytes each in an
// overlay.Dir): past it the oldest go, though the newest always stays.
const snapshotBudget = 1 << 18

// nodeDirs keeps the snapshots of the directories most recently listed by node, for the READDIR
// requests that come without a handle when the kernel opens directories itself (noOpenDir): a large
// directory is listed in many requests, each resuming at a position of the same snapshot. A snapshot
// goes when a request reaches the end of its listing (the kernel has it all, and keeps it), when
// byNodeSlots newer ones came, or when they hold more than snapshotBudget entries together. Only a
// read-only view is served this way, so a snapshot never goes stale, and one taken again is the same
// (sorted by name): positions hold across snapshots too.
type nodeDirs[D Dir] struct {
	mu    sync.Mutex
	next  int
	slots [byNodeSlots]*nodeDir[D]
}

type nodeDir[D Dir] struct {
	node overlay.Node
	dir  D
}

func (t *nodeDirs[D]) get(node overlay.Node, read func(overlay.Node) (D, error)) (D, error) {
	t.mu.Lock()
	for _, nd := range t.slots {
		if nd != nil && nd.node == node {
			t.mu.Unlock()
			return nd.dir, nil
		}
	}
	t.mu.Unlock()
	d, err := read(node)
	if err != nil {
		return d, err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	i := t.next
	t.slots[i] = &nodeDir[D]{node: node, dir: d}
	t.next = (i + 1) % byNodeSlots
	total := 0
	for _, nd := range t.slots {
		if nd != nil {
			total += nd.dir.Len()
		}
	}
	// The slots after i are the oldest.
	for j := 1; total > snapshotBudget && j < byNodeSlots; j++ {
		k := (i + j) % byNodeSlots
		if nd := t.slots[k]; nd != nil {
			total -= nd.dir.Len()
			t.slots[k] = nil
		}
	}
	return d, nil
}

// drop forgets node's snapshot.
func (t *nodeDirs[D]) drop(node overlay.Node) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for i, nd := range t.slots {
		if nd != nil && nd.node == node {
			t.slots[i] = nil
		}
	}
}

// len returns the number of snapshots kept.
func (t *nodeDirs[D]) len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for _, nd := range t.slots {
		if nd != nil {
			n++
		}
	}
	return n
}

// OnUnmount closes the files kept for the requests without a handle.
func (fs *fileSystem[D]) OnUnmount() { fs.byNode.closeAll() }
