package fs

import (
	"context"
	"errors"
	"log/slog"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fuse"
	"github.com/imgfs/imgfs/overlay"
)

// errnos maps the view's errors to errno values, tested in order with errors.Is so that wrapped errors
// map too (go-fuse's fs.ToErrno compares with == and would turn them into ENOSYS).
var errnos = []struct {
	err   error
	errno syscall.Errno
}{
	{overlay.ErrNotExist, syscall.ENOENT},
	{overlay.ErrNotDir, syscall.ENOTDIR},
	{overlay.ErrIsDir, syscall.EISDIR},
	{overlay.ErrInvalid, syscall.EINVAL},
	{overlay.ErrExist, syscall.EEXIST},
	{overlay.ErrNotEmpty, syscall.ENOTEMPTY},
	{overlay.ErrReadOnly, syscall.EROFS},
	{overlay.ErrReservedName, syscall.EPERM},
	{overlay.ErrCrossDevice, syscall.EXDEV},
	{overlay.ErrNameTooLong, syscall.ENAMETOOLONG},
	{context.Canceled, syscall.EINTR},
}

// Errno returns the errno value that the kernel should see for err: 0 for nil; the syscall.Errno that
// err wraps, if any (an error of the upper directory such as ENOSPC or EACCES); ENOENT, ENOTDIR,
// EISDIR, EINVAL, EEXIST, ENOTEMPTY, EROFS, EPERM (a reserved ".wh." name), EXDEV and ENAMETOOLONG for the view's
// errors of those kinds; EINTR for a cancelled request; EIO for anything else.
func Errno(err error) syscall.Errno {
	if err == nil {
		return 0
	}
	if errno, ok := errors.AsType[syscall.Errno](err); ok && errno != 0 {
		return errno
	}
	for _, e := range errnos {
		if errors.Is(err, e.err) {
			return e.errno
		}
	}
	return syscall.EIO
}

// status maps err to a FUSE status, logging errors that have no errno of their own: they reach the
// caller as EIO and the log is the only place that says why.
func (fs *fileSystem[D]) status(op string, n uint64, err error) fuse.Status {
	errno := Errno(err)
	if errno == syscall.EIO {
		fs.log.Debug("fuse request failed", slog.String("op", op), slog.Uint64("node", n), slog.Any("err", err))
	}
	return fuse.Status(errno)
}
