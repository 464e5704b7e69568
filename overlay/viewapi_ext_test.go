package overlay_test

import (
	"context"
	"io"
	"log/slog"

	"github.com/imgfs/imgfs/export"
	"github.com/imgfs/imgfs/overlay"
)

func init() {
	overlay.ExportTar = func(ctx context.Context, v *overlay.View, w io.Writer, log *slog.Logger) (overlay.ExportStats, error) {
		st, err := export.Write(ctx, v, w, export.Options{Logger: log})
		return overlay.ExportStats(st), err
	}
}
