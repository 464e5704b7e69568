package index

// Test-only entry points: exported for the tests of this package, not part of its API.

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
)

// BuildTable scans the uncompressed tar stream r and writes its table atomically to path, recording
// info in its header. Only tests use it; Open builds and caches tables by itself.
func BuildTable(ctx context.Context, r io.Reader, path string, info TableInfo, logger *slog.Logger) error {
	return buildTableWindow(ctx, r, path, info, logger, 0)
}

// buildTableWindow is BuildTable writing the table's cold metadata through windows of window entries
// (0: the default).
func buildTableWindow(ctx context.Context, r io.Reader, path string, info TableInfo, logger *slog.Logger, window int) error {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	b := newBuilder(logger, "")
	b.coldWindow = window
	defer b.close()
	if err := b.scan(ctx, newScanner(r), nil); err != nil {
		return fmt.Errorf("building table: %w", err)
	}
	t, err := storeTable(b, info, path, "")
	if err != nil {
		return err
	}
	return t.Close()
}

// ReadTableFile reads a whole table file into memory and checks it, without looking at what it was
// built from. Only tests use it; the mount uses mapped tables through Open.
func ReadTableFile(path string) (*Table, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	t, err := parseTable(data)
	if err != nil {
		return nil, fmt.Errorf("reading table %s: %w", path, err)
	}
	return t, nil
}

// Sparse returns the data regions of a sparse file (Entry.Flags has FlagSparse), copied; nil otherwise.
// Only tests use it; the view reads them through SparseRegions, which copies nothing.
func (t *Table) Sparse(id ID) []SparseRegion {
	raw, n := t.sparseMap(id)
	if raw == nil {
		return nil
	}
	out := make([]SparseRegion, n)
	for i := range out {
		out[i] = sparseRegion(raw, i)
	}
	return out
}
