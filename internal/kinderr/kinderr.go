// Package kinderr makes errors that carry their own message and still match a package's sentinel with
// errors.Is, so that messages do not repeat the sentinel's text.
package kinderr

import "fmt"

type kindError struct {
	kind error
	err  error
}

func (e *kindError) Error() string        { return e.err.Error() }
func (e *kindError) Unwrap() error        { return e.err }
func (e *kindError) Is(target error) bool { return target == e.kind }

// Errorf formats an error that errors.Is matches with kind; %w in format wraps as fmt.Errorf does.
func Errorf(kind error, format string, args ...any) error {
	return &kindError{kind: kind, err: fmt.Errorf(format, args...)}
}
