package custody

import "golang.org/x/sys/unix"

// oNoatime keeps reads from updating a file's atime (Linux; needs ownership or CAP_FOWNER).
const oNoatime = unix.O_NOATIME
