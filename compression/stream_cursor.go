package compression

import (
	"os"
	"slices"
	"sync"
)

// Idle cursors (live decoders kept so that sequential readers continue where they stopped) are bounded
// per stream and, by kind, across the process: a gzip cursor holds about 40 KiB, a zstd one its frames'
// window (often 1 MiB or more).
const maxStreamCursors = 4

var (
	idleGzip = &cursorLRU{max: 16}
	idleZstd = &cursorLRU{max: 4}
)

// cursorLRU orders the idle cursors of one kind across all streams, least recently released first. Lock
// order: a Stream's mu, then the LRU's mu; never the other way round.
type cursorLRU struct {
	mu   sync.Mutex
	max  int
	list []idleCursor
}

type idleCursor struct {
	s *Stream
	c cursor
}

// add records c as the most recently released cursor and returns the one to evict, if any.
func (l *cursorLRU) add(s *Stream, c cursor) (victim idleCursor, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.list = append(l.list, idleCursor{s, c})
	if len(l.list) <= l.max {
		return idleCursor{}, false
	}
	victim = l.list[0]
	l.list = slices.Delete(l.list, 0, 1)
	return victim, true
}

func (l *cursorLRU) remove(c cursor) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if i := slices.IndexFunc(l.list, func(e idleCursor) bool { return e.c == c }); i >= 0 {
		l.list = slices.Delete(l.list, i, i+1)
	}
}

// len returns the number of idle cursors of this kind (for tests).
func (l *cursorLRU) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.list)
}

// acquire takes a cursor positioned at or before off: an idle one at least as close as pt, or one reset
// to pt.
func (s *Stream) acquire(off int64, pt *point) (cursor, error) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, os.ErrClosed
	}
	best := -1
	var bestPos int64
	for i, c := range s.idle {
		if p := c.pos(); p <= off && p >= pt.Out && (best < 0 || p > bestPos) {
			best, bestPos = i, p
		}
	}
	if best >= 0 {
		c := s.idle[best]
		s.idle = slices.Delete(s.idle, best, best+1)
		s.lru.remove(c)
		s.mu.Unlock()
		return c, nil
	}
	var c cursor
	if len(s.idle) >= maxStreamCursors {
		c = s.idle[0] // recycle the least recently used one
		s.idle = slices.Delete(s.idle, 0, 1)
		s.lru.remove(c)
	}
	s.mu.Unlock()
	if c == nil {
		c = s.newCursor()
	}
	if err := c.reset(pt); err != nil {
		c.close()
		return nil, err
	}
	return c, nil
}

// release returns a cursor to the idle list; one that failed is dropped. Keeping it may evict the least
// recently used idle cursor of this stream or of any stream.
func (s *Stream) release(c cursor, ok bool) {
	s.mu.Lock()
	if !ok || s.closed {
		s.mu.Unlock()
		c.close()
		return
	}
	var drop cursor
	if len(s.idle) >= maxStreamCursors {
		drop = s.idle[0]
		s.idle = slices.Delete(s.idle, 0, 1)
		s.lru.remove(drop)
	}
	s.idle = append(s.idle, c)
	victim, evict := s.lru.add(s, c)
	s.mu.Unlock()
	if drop != nil {
		drop.close()
	}
	if evict {
		victim.s.evict(victim.c)
	}
}

// evict closes c if it is still idle in s (another reader may have taken it meanwhile).
func (s *Stream) evict(c cursor) {
	s.mu.Lock()
	i := slices.Index(s.idle, c)
	if i >= 0 {
		s.idle = slices.Delete(s.idle, i, i+1)
	}
	s.mu.Unlock()
	if i >= 0 {
		c.close()
	}
}
