package overlay

import (
	"context"
	"io"
	"log/slog"
)

// The packages over the view (export, layerdiff) import overlay, so an internal test of overlay
// cannot import them; the tests here that run a view through them call these, which
// viewapi_ext_test.go (package overlay_test, which may import them) sets.

// ExportStats are export.Stats.
type ExportStats struct{ Entries, Bytes int64 }

// ExportTar is export.Write with a logger.
var ExportTar func(ctx context.Context, v *View, w io.Writer, log *slog.Logger) (ExportStats, error)
