package archive

import "syscall"

// noAtime is added to the flags of source opens where the kernel permits it (the caller owns the
// file, or has CAP_FOWNER): reading an archive then leaves even its atime as it was.
const noAtime = syscall.O_NOATIME
