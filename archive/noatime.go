package archive

import (
	"errors"
	"log/slog"
	"os"
	"syscall"
)

// openSource opens a source file read-only through open (given the flags), with O_NOATIME where the
// kernel allows it, so that reading an archive leaves its atime as it was (an examiner's evidence
// keeps its times). O_NOATIME needs the file's ownership or CAP_FOWNER; without them the file is
// opened without it, which is logged at debug level.
func openSource(open func(flag int) (*os.File, error), name string, log *slog.Logger) (*os.File, error) {
	flag := os.O_RDONLY | openFlags
	if oNoatime != 0 {
		f, err := open(flag | oNoatime)
		if !errors.Is(err, syscall.EPERM) {
			return f, err
		}
		log.Debug("O_NOATIME refused (not the owner, no CAP_FOWNER): reading updates the atime", "file", name)
	}
	return open(flag)
}
