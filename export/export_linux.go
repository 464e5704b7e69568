package export

import (
	"errors"
	"io"
	"os"
	"syscall"
)

// sendfileChunk is the most one sendfile call moves, so that ctx and Progress are looked at between.
const sendfileChunk = 8 << 20

// sendFile copies n bytes at off of src to w with sendfile(2), in the kernel, when w is an *os.File
// (a pipe, a file, a socket): to a pipe the page-cache pages are passed by reference. It returns the
// bytes copied; handled is false when nothing was copied because the kernel cannot do it for these
// descriptors, and the caller must copy through user space. between is called after every chunk; an
// error from it stops the copy.
func sendFile(w io.Writer, src *os.File, off, n int64, between func(int64) error) (written int64, handled bool, err error) {
	dst, ok := w.(*os.File)
	if !ok {
		return 0, false, nil
	}
	sc, err := src.SyscallConn()
	if err != nil {
		return 0, false, nil
	}
	dc, err := dst.SyscallConn()
	if err != nil {
		return 0, false, nil
	}
	for written < n {
		want := int(min(n-written, sendfileChunk))
		var k int
		var serr error
		cerr := sc.Control(func(sfd uintptr) {
			werr := dc.Write(func(dfd uintptr) bool {
				pos := off + written
				k, serr = syscall.Sendfile(int(dfd), int(sfd), &pos, want)
				return serr != syscall.EAGAIN // wait until a non-blocking destination takes more
			})
			if serr == nil {
				serr = werr
			}
		})
		if serr == nil {
			serr = cerr
		}
		if k > 0 {
			written += int64(k)
		}
		if serr != nil {
			if written == 0 && unsupported(serr) {
				return 0, false, nil
			}
			return written, true, &os.SyscallError{Syscall: "sendfile", Err: serr}
		}
		if k == 0 {
			// The source ended before n bytes: the layer file is shorter than its table says.
			return written, true, io.ErrUnexpectedEOF
		}
		if err := between(int64(k)); err != nil {
			return written, true, err
		}
	}
	return written, true, nil
}

// unsupported reports whether sendfile refused the pair of descriptors rather than failed.
func unsupported(err error) bool {
	return errors.Is(err, syscall.EINVAL) || errors.Is(err, syscall.ENOSYS) ||
		errors.Is(err, syscall.EOPNOTSUPP) || errors.Is(err, syscall.EBADF) || errors.Is(err, syscall.EXDEV)
}
