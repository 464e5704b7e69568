package index

import "errors"

// ErrSourceChanged means the archive file a layer is read from was written to, truncated or replaced
// in place since the layer was opened: its bytes can no longer be trusted, and reads fail (EIO) rather
// than return other bytes.
var ErrSourceChanged = errors.New("index: the archive changed since it was opened")

// CheckSource returns ErrSourceChanged (wrapped, naming the file) when the archive the layer is read
// from changed since the layer was opened. Readers that copy a FileRange themselves call it after the
// copy, as ReadAt does after every read.
func (l *Layer) CheckSource() error { return l.src.check() }
