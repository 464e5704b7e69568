package cache

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"
)

// PruneOptions says what prune removes. Keys in use are never removed.
type PruneOptions struct {
	All       bool          // every key not in use
	OlderThan time.Duration // keys last used longer ago than this (0: no age limit)
	MaxSize   int64         // then the oldest keys until the cache holds at most this many bytes (0: no limit)
	Now       time.Time     // the time OlderThan counts from (zero: now)
}

// Select walks entries oldest last use first and returns those opts removes. busy is asked about each
// candidate once, in that order; a busy key stays (and its bytes still count against MaxSize), and
// returning false commits to its removal.
func Select(entries []Entry, opts PruneOptions, busy func(Entry) bool) []Entry {
	now := opts.Now
	if now.IsZero() {
		now = time.Now()
	}
	es := append([]Entry(nil), entries...)
	sortOldestFirst(es)
	var total int64
	for _, e := range es {
		total += e.Size
	}
	var out []Entry
	for _, e := range es {
		want := opts.All ||
			(opts.OlderThan > 0 && now.Sub(e.LastUse) > opts.OlderThan) ||
			(opts.MaxSize > 0 && total > opts.MaxSize)
		if !want || busy(e) {
			continue
		}
		out = append(out, e)
		total -= e.Size
	}
	return out
}

// Result is what a prune did.
type Result struct {
	Removed      []Entry `json:"removed"`
	RemovedBytes int64   `json:"removedBytes"`
	Busy         []Entry `json:"busy"` // candidates skipped because a live process uses them
	Remaining    int64   `json:"remainingBytes"`
}

// Prune removes whole keys from the cache under dir as opts says, each with its exclusive lock held,
// oldest last use first. Concurrent prunes and users are safe: a key someone holds is skipped.
func Prune(dir string, opts PruneOptions) (Result, error) {
	var res Result
	entries, err := List(dir)
	if err != nil {
		return res, err
	}
	var firstErr error
	var total int64
	for _, e := range entries {
		total += e.Size
	}
	locks := map[string]*os.File{}
	defer func() {
		for _, f := range locks {
			f.Close()
		}
	}()
	sel := Select(entries, opts, func(e Entry) bool {
		f, busy, err := tryExclusive(dir, e.Key)
		if err != nil {
			if firstErr == nil {
				firstErr = err
			}
			return true
		}
		if busy {
			res.Busy = append(res.Busy, e)
			return true
		}
		locks[e.Key] = f
		return false
	})
	for _, e := range sel {
		n, err := removeKey(dir, e)
		locks[e.Key].Close()
		delete(locks, e.Key)
		if err != nil {
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		if n == 0 {
			continue // a concurrent prune removed it first
		}
		res.Removed = append(res.Removed, e)
		res.RemovedBytes += e.Size
	}
	res.Remaining = total - res.RemovedBytes
	if res.Removed == nil {
		res.Removed = []Entry{}
	}
	if res.Busy == nil {
		res.Busy = []Entry{}
	}
	return res, firstErr
}

// removeKey removes e's files and then its lock file, and says how many files it removed; the caller
// holds the lock.
func removeKey(dir string, e Entry) (int, error) {
	n := 0
	for _, p := range e.Files {
		err := os.Remove(p)
		if err == nil {
			n++
		} else if !errors.Is(err, fs.ErrNotExist) {
			return n, fmt.Errorf("removing %s: %w", p, err)
		}
	}
	if err := os.Remove(lockPath(dir, e.Key)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return n, fmt.Errorf("removing %s: %w", lockPath(dir, e.Key), err)
	}
	return n, nil
}
