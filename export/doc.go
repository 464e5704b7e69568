// Package export writes a merged overlay view as one flat, deterministic POSIX pax tar stream, as
// `docker export` does, through the view's public API only.
package export
