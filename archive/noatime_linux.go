package archive

import "syscall"

// oNoatime is added to the flags of source files where the kernel allows it (see openSource).
const oNoatime = syscall.O_NOATIME
