//go:build unix

package archive

import "syscall"

// openFlags are added to O_RDONLY when opening source files: O_NONBLOCK keeps a FIFO planted in place of
// a blob from blocking the open (it is then refused as not a regular file).
const openFlags = syscall.O_NONBLOCK
