package overlay_test

import (
	"context"
	"io"
	"log/slog"

	"github.com/imgfs/imgfs/export"
	"github.com/imgfs/imgfs/layerdiff"
	"github.com/imgfs/imgfs/overlay"
)

func init() {
	overlay.ExportTar = func(ctx context.Context, v *overlay.View, w io.Writer, log *slog.Logger) (overlay.ExportStats, error) {
		st, err := export.Write(ctx, v, w, export.Options{Logger: log})
		return overlay.ExportStats(st), err
	}
	overlay.DiffLines = func(ctx context.Context, lower *overlay.View, dir string) ([]string, error) {
		changes, err := layerdiff.Changes(ctx, lower, dir)
		out := make([]string, len(changes))
		for i, c := range changes {
			out[i] = c.String()
		}
		return out, err
	}
	overlay.CommitTar = func(ctx context.Context, w io.Writer, lower *overlay.View, dir string, log *slog.Logger) error {
		_, err := layerdiff.Write(ctx, w, lower, dir, layerdiff.Options{Logger: log})
		return err
	}
}
