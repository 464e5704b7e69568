package overlay

import "sync"

// stackCache keeps recently used directory stacks, keyed by any entry of the stack (in practice the
// directory's node and the entries met while walking up to it). It holds at most max stacks in two
// generations: when the current generation is full it becomes the old one and the older is dropped; a hit
// in the old generation moves the stack back to the current one. This approximates LRU with two maps and
// no per-entry links.
type stackCache struct {
	mu       sync.Mutex
	cur, old map[frame]stack
	half     int
}

func (c *stackCache) init(max int) {
	c.half = max / 2
	if c.half < 1 {
		c.half = 1
	}
	c.cur = make(map[frame]stack)
}

func (c *stackCache) get(f frame) (stack, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s, ok := c.cur[f]; ok {
		return s, true
	}
	if s, ok := c.old[f]; ok {
		delete(c.old, f)
		c.putLocked(f, s)
		return s, true
	}
	return nil, false
}

func (c *stackCache) put(f frame, s stack) {
	c.mu.Lock()
	c.putLocked(f, s)
	c.mu.Unlock()
}

func (c *stackCache) putLocked(f frame, s stack) {
	if _, ok := c.cur[f]; !ok && len(c.cur) >= c.half {
		c.old = c.cur
		c.cur = make(map[frame]stack, c.half)
	}
	c.cur[f] = s
}

// len returns the number of cached stacks (for tests).
func (c *stackCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.cur) + len(c.old)
}
