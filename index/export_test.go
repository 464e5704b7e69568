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
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	b := newBuilder(logger, "")
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
