package main

import (
	"errors"
	"fmt"
	"os/exec"

	"golang.org/x/sys/unix"
)

// unmount detaches the FUSE mount at mnt (checked by checkUnmountTarget or checkMountTarget): directly
// when we may (root), else through fusermount.
func unmount(mnt string, lazy bool) error {
	flags := unix.UMOUNT_NOFOLLOW
	if lazy {
		flags |= unix.MNT_DETACH
	}
	err := unix.Unmount(mnt, flags)
	if err == nil {
		return nil
	}
	if !errors.Is(err, unix.EPERM) {
		return fmt.Errorf("unmount %s: %w", mnt, err)
	}
	for _, prog := range []string{"fusermount3", "fusermount"} {
		path, lerr := exec.LookPath(prog)
		if lerr != nil {
			continue
		}
		args := []string{"-u"}
		if lazy {
			args = append(args, "-z")
		}
		out, rerr := exec.Command(path, append(args, mnt)...).CombinedOutput()
		if rerr != nil {
			return fmt.Errorf("unmount %s: %s", mnt, string(out))
		}
		return nil
	}
	return fmt.Errorf("unmount %s: %w (and no fusermount found)", mnt, err)
}
