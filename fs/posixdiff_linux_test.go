package fs

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/imgfs/imgfs/index"
)

// The differential POSIX suite: the same operation sequences (the system calls pjdfstest covers) run
// on a plain directory of the host's file system, on the kernel's overlayfs over the extracted layer,
// and on a writable mount of imgfs over the same layer. Every operation's result (errno, and what it
// reports: stat fields, times, ctime and mtime moved or not, xattr values, listings) must be the same on
// all three, and so must the resulting trees (types, modes, owners, link counts, sizes, contents, link
// targets, xattrs). Operations run in a child process, as root or as an unprivileged user.
//
// Intended differences, each argued in the README ("Differences from a plain directory"):
//   - Directories merged from the layers and the upper directory report nlink 1 on overlayfs and imgfs
//     (overlayfs does not count their subdirectories); the tree comparison with the plain directory
//     skips the link count of directories that overlayfs reports as 1.

var (
	posixMergedDir = regexp.MustCompile(`^OK mode=4[0-7]{4} .*nlink=1$`)
	posixNlink     = regexp.MustCompile(`nlink=[0-9]+`)
)

// posixUID and posixUID2 are the unprivileged users of the suite.
const (
	posixUID  = 65534
	posixUID2 = 65533
)

// posixImage is the layer below the overlay and imgfs, extracted as it is into the plain directory.
var posixImage = []memMember{
	{"etc/passwd", index.TypeRegular, 0o644, "root:x:0:0\n"},
	{"bin/sh", index.TypeRegular, 0o755, "#!binary"},
	{"bin/bash", index.TypeHardlink, 0, "bin/sh"},
	{"lower/f", index.TypeRegular, 0o644, "lower file"},
	{"lower/g", index.TypeRegular, 0o666, "world-writable"},
	{"lower/sub/x", index.TypeRegular, 0o600, "x"},
	{"lower/sub/deeper/y", index.TypeRegular, 0o644, "y"},
	{"lower/link", index.TypeSymlink, 0o777, "f"},
	{"lower/empty", index.TypeDir, 0o755, ""},
	{"pub", index.TypeDir, 0o777, ""},
}

// posixScenarios are the operation sequences. A line is an operation (see posixOp); "@UID " in front
// runs it as that user (group the same number), else as root.
var posixScenarios = []struct {
	name string
	ops  []string
}{
	{"files as root", []string{
		"open f O_WRONLY|O_CREAT|O_EXCL 0644",
		"open f O_WRONLY|O_CREAT|O_EXCL 0644",
		"stat f",
		"ctime f chmod f 0600",
		"ctime f chown f 12 34",
		"stat f",
		"ctime f link f g",
		"stat g",
		"ctime . link f h",
		"ctime g unlink h",
		"stat f",
		"ctime f write f hello",
		"ctime f truncate f 2",
		"ctime f truncate f 2",
		"read f",
		"ctime f utimens f 1000000000.5 2000000000.25",
		"times f",
		"utimens f omit 1500000000",
		"times f",
		"utimens f 1200000000 omit",
		"times f",
		"ctime f utimens f now now",
		"ctime f utimens f omit omit",
		"ctime f>f2 rename f f2",
		"stat f2",
		"ctime . rename f2 f",
		"chmod f 04755",
		"chown f 12 34",
		"stat f",
		"chmod f 02755",
		"ctime f chown f -1 56",
		"stat f",
		"symlink f s",
		"symlink f s",
		"ctime s chown s 7 8",
		"lstat s",
		"unlink nothere",
		"truncate s 0",
		"stat f",
	}},
	{"lower files", []string{
		"ctime lower/f chmod lower/f 0640",
		"stat lower/f",
		"ctime lower/g chown lower/g 5 6",
		"stat lower/g",
		"ctime lower/sub/x utimens lower/sub/x 1000000000 1000000000",
		"times lower/sub/x",
		"ctime lower/f link lower/f lower/f2",
		"stat lower/f",
		"ctime lower/f2 unlink lower/f",
		"stat lower/f2",
		"ctime bin/bash write bin/sh more",
		"stat bin/bash",
		"read bin/bash",
		"ctime lower truncate lower/g 3",
		"read lower/g",
		"ctime lower rename lower/g lower/g2",
		"ctime lower/g2>lower/g3 rename lower/g2 lower/g3",
		"rename lower/link lower/link2",
		"readlink lower/link2",
		"stat lower",
		"stat lower/sub",
		"stat lower/sub/deeper",
		"ctime lower/sub unlink lower/sub/x",
		"rmdir lower/sub",
		"rmdir lower/sub/deeper",
		"unlink lower/sub/deeper/y",
		"rmdir lower/sub/deeper",
		"stat lower/sub",
		"rmdir lower/sub",
		"rmdir lower/empty",
		"readdir lower",
		"mkdir lower/sub 0700",
		"readdir lower/sub",
		"stat lower/sub",
	}},
	{"directories and link counts", []string{
		"mkdir d 0755",
		"mkdir d 0755",
		"stat d",
		"ctime d mkdir d/a 0755",
		"mkdir d/b 0755",
		"mkdir d/a/x 0700",
		"stat d",
		"stat d/a",
		"ctime d/a rename d/a/x d/b/x",
		"stat d/a",
		"stat d/b",
		"ctime d/b/x>d/x rename d/b/x d/x",
		"stat d",
		"stat d/b",
		"rename d d/a/inside",
		"rename d/a d/b",
		"stat d",
		"mkdir d/c 0755",
		"open d/c/f O_CREAT|O_WRONLY 0644",
		"rename d/b d/c",
		"rmdir d/c",
		"rename d/c/f d/b",
		"rename d/b d/c/f",
		"rename d/x d/b",
		"stat d",
		"stat d/b",
		"ctime d rmdir d/b/x",
		"rmdir d/b/x",
		"rmdir d/b/.",
		"stat d",
		"ctime d rename d/b d/e",
		"stat d",
		"open d/e O_WRONLY",
		"open d/e O_RDONLY|O_DIRECTORY",
		"unlink d/e",
		"mkdir d/e/f/g 0755",
		"mkdir " + strings.Repeat("n", 256) + " 0755",
		"mkdir " + strings.Repeat("n", 255) + " 0755",
		"rmdir " + strings.Repeat("n", 255),
		"stat .",
	}},
	{"rename and hard links", []string{
		"open a O_CREAT|O_WRONLY 0644",
		"link a b",
		"link a c",
		"open z O_CREAT|O_WRONLY 0600",
		"stat a",
		"ctime a rename z b",
		"stat a",
		"stat b",
		"ctime a rename c a",
		"stat a",
		"stat c",
		"link b l2",
		"ctime b rename l2 a",
		"stat a",
		"stat b",
		"renamex a b RENAME_NOREPLACE",
		"renamex a b RENAME_EXCHANGE",
		"stat a",
		"stat b",
		"mkdir d 0755",
		"renamex a d RENAME_EXCHANGE",
		"stat d",
		"stat a",
		"link a a2",
		"link d d2",
		"link nothere x",
		"stat a2",
	}},
	{"special files", []string{
		"mkfifo p 0644",
		"mkfifo p 0644",
		"stat p",
		"mknod c c 0600 1 3",
		"mknod b b 0640 7 9",
		"mknod r f 0640 0 0",
		"mknod s s 0755 0 0",
		"stat c",
		"stat b",
		"stat r",
		"stat s",
		"bindconnect sock",
		"bindconnect sock",
		"stat sock",
		"open sock O_RDONLY",
		"open p O_RDONLY|O_NONBLOCK",
		"open p O_WRONLY|O_NONBLOCK",
		"ctime s chmod s 0700",
		"ctime s chown s 3 4",
		"ctime sock link sock sock2",
		"stat sock",
		"ctime sock>sock3 rename sock sock3",
		"ctime p>p2 rename p p2",
		"ctime sock2 unlink sock3",
		"stat sock2",
		"rename c b",
		"stat b",
		"unlink s",
		"unlink p2",
		"readdir .",
	}},
	{"open flags", []string{
		"open f O_WRONLY|O_CREAT 0640",
		"write f 0123456789",
		"open f O_RDONLY|O_DIRECTORY",
		"open pub O_WRONLY",
		"open pub O_RDWR",
		"open pub O_RDONLY",
		"open f/x O_RDONLY",
		"open nodir/x O_WRONLY|O_CREAT 0644",
		"symlink f sl",
		"symlink nowhere dangling",
		"open sl O_RDONLY|O_NOFOLLOW",
		"open dangling O_WRONLY|O_CREAT|O_EXCL 0644",
		"open dangling O_WRONLY|O_CREAT 0644",
		"stat nowhere",
		"open f O_WRONLY|O_TRUNC",
		"read f",
		"write f abc",
		"append f def",
		"read f",
		"open lower/f O_RDWR|O_APPEND",
		"append lower/f +more",
		"read lower/f",
		"open lower/sub/x O_WRONLY|O_TRUNC",
		"read lower/sub/x",
		"stat lower/sub/x",
		"open " + strings.Repeat("x", 256) + " O_WRONLY|O_CREAT 0644",
		"open lower/f O_RDONLY|O_NOATIME",
		"open lower/f O_RDONLY|O_PATH",
		"open f O_WRONLY|O_SYNC",
		"open f O_WRONLY|O_DSYNC",
		"open f O_RDONLY|O_CREAT|O_EXCL 0644",
		"open pub O_RDONLY|O_CREAT 0644",
		"ctime . open new O_RDONLY|O_CREAT 0444",
		"stat new",
		"open new O_WRONLY",
	}},
	{"xattrs", []string{
		"setxattr lower/f user.a 1 0",
		"getxattr lower/f user.a",
		"setxattr lower/f user.a 2 XATTR_CREATE",
		"setxattr lower/f user.b 2 XATTR_REPLACE",
		"setxattr lower/f user.b 3 XATTR_CREATE",
		"setxattr lower/f user.a 4 XATTR_REPLACE",
		"listxattr lower/f",
		"ctime lower/f removexattr lower/f user.a",
		"removexattr lower/f user.a",
		"getxattr lower/f user.a",
		"listxattr lower/f",
		"mkdir d 0755",
		"ctime d setxattr d user.dir v 0",
		"setxattr d trusted.t v 0",
		"getxattr d trusted.t",
		"symlink d sl",
		"setxattr sl user.x v 0",
		"getxattr sl user.x",
		"mkfifo p 0644",
		"setxattr p user.x v 0",
		"setxattr lower/sub user.empty - 0",
		"getxattr lower/sub user.empty",
		"listxattr lower/sub",
		"getxattr nothere user.a",
		"setxattr bin/sh user.h shared 0",
		"getxattr bin/bash user.h",
	}},
	{"unprivileged user", []string{
		"mkdir u 0755",
		"chown u 65534 65534",
		"@65534 open u/f O_WRONLY|O_CREAT|O_EXCL 0644",
		"@65534 stat u/f",
		"@65534 ctime u/f chmod u/f 0600",
		"@65534 chmod u/f 02755",
		"@65534 stat u/f",
		"@65534 chown u/f 0 -1",
		"@65534 chown u/f -1 0",
		"@65534 chown u/f 65534 65534",
		"@65534 ctime u/f utimens u/f now now",
		"@65534 utimens u/f 1000000000 1000000000",
		"@65534 times u/f",
		"@65534 utimens lower/f now now",
		"@65534 utimens lower/g now now",
		"@65534 utimens lower/g 1000 1000",
		"@65534 chmod lower/f 0777",
		"@65534 chown lower/f 65534 65534",
		"@65534 open lower/f O_WRONLY",
		"@65534 open lower/g O_WRONLY",
		"@65534 truncate lower/f 1",
		"@65534 truncate lower/g 1",
		"@65534 unlink lower/f",
		"@65534 rename lower/f u/f2",
		"@65534 link lower/f u/f3",
		"@65534 link u/f u/f4",
		"@65534 stat u/f",
		"@65534 mkdir lower/n 0755",
		"@65534 mkdir pub/n 0755",
		"@65534 mkfifo u/p 0600",
		"@65534 mknod u/c c 0600 1 3",
		"@65534 mknod u/s s 0600 0 0",
		"@65534 bindconnect u/sock",
		"@65534 setxattr u/f user.x 1 0",
		"@65534 setxattr lower/f user.x 1 0",
		"@65534 setxattr u/f trusted.x 1 0",
		"@65534 getxattr u/f user.x",
		"@65534 open lower/sub/x O_RDONLY",
		"@65534 readdir lower/sub",
		"@65534 symlink /etc/passwd u/l",
		"@65534 ctime u rename u/l u/l2",
		"@65534 rmdir u",
		"@65534 unlink u/f",
		"stat u",
		"readdir u",
	}},
	{"sticky directory", []string{
		"mkdir t 0777",
		"chmod t 01777",
		"@65534 open t/a O_WRONLY|O_CREAT 0666",
		"@65533 open t/b O_WRONLY|O_CREAT 0666",
		"@65534 mkdir t/da 0777",
		"@65533 unlink t/a",
		"@65533 rename t/a t/c",
		"@65533 rename t/b t/a",
		"@65533 rmdir t/da",
		"@65533 rename t/da t/db",
		"@65534 rename t/a t/a2",
		"@65534 rename t/a2 t/b",
		"@65534 unlink t/b",
		"@65533 open t/a2 O_WRONLY",
		"@65533 unlink t/b",
		"@65534 rename t/da t/db",
		"unlink t/a2",
		"rmdir t/db",
		"@65534 open pub/x O_WRONLY|O_CREAT 0644",
		"chmod pub 01777",
		"@65533 unlink pub/x",
		"@65534 unlink pub/x",
		"stat t",
		"readdir t",
	}},
	{"setgid directory and privilege bits", []string{
		"mkdir g 0775",
		"chown g 0 99",
		"chmod g 02775",
		"open g/f O_CREAT|O_WRONLY 0644",
		"stat g/f",
		"mkdir g/sub 0755",
		"stat g/sub",
		"mkfifo g/p 0644",
		"stat g/p",
		"symlink x g/l",
		"lstat g/l",
		"mknod g/s s 0644 0 0",
		"stat g/s",
		"@65534 open g/u O_CREAT|O_WRONLY 0644",
		"open pub/s O_CREAT|O_WRONLY 0666",
		"chown pub/s 65534 65534",
		"chmod pub/s 06777",
		"stat pub/s",
		"@65533 write pub/s data",
		"stat pub/s",
		"chmod pub/s 06777",
		"@65533 truncate pub/s 1",
		"stat pub/s",
		"chmod pub/s 06777",
		"chown pub/s 65534 65534",
		"stat pub/s",
		"@65534 chmod pub/s 02777",
		"@65534 stat pub/s",
	}},
	{"non-searchable and unreadable directories", []string{
		"mkdir n 0755",
		"open n/f O_WRONLY|O_CREAT 0666",
		"mkdir n/sub 0777",
		"chmod n 0644",
		"@65534 stat n/f",
		"@65534 open n/f O_RDONLY",
		"@65534 readdir n",
		"@65534 unlink n/f",
		"@65534 mkdir n/x 0755",
		"@65534 rename n/f pub/f",
		"@65534 open n/sub/new O_WRONLY|O_CREAT 0644",
		"stat n/f",
		"chmod n 0311",
		"@65534 readdir n",
		"@65534 stat n/f",
		"@65534 open n/f O_WRONLY",
		"@65534 unlink n/f",
		"@65534 open n/sub/new O_WRONLY|O_CREAT 0644",
		"chmod lower 0700",
		"@65534 stat lower/f",
		"@65534 open lower/f O_RDONLY",
		"chmod lower 0755",
		"@65534 stat lower/f",
		"chmod n 0755",
		"readdir n",
	}},
}

// TestMain runs posixHelper instead of the tests when the suite starts this binary as its child.
func TestMain(m *testing.M) {
	if os.Getenv("IMGFS_POSIX_HELPER") != "" {
		os.Exit(posixHelper())
	}
	code := m.Run()
	if posixHelperBin.path != "" {
		os.RemoveAll(filepath.Dir(posixHelperBin.path))
	}
	os.Exit(code)
}

// posixRequest is what a child process is given on its standard input: a root and operations.
type posixRequest struct {
	Root string
	Ops  [][]string
}

// posixHelper runs the operations of a posixRequest and writes their results as a JSON list.
func posixHelper() int {
	var req posixRequest
	if err := json.NewDecoder(os.Stdin).Decode(&req); err != nil {
		fmt.Fprintln(os.Stderr, "posix helper:", err)
		return 2
	}
	unix.Umask(0o022)
	out := make([]string, len(req.Ops))
	for i, op := range req.Ops {
		out[i] = posixOp(req.Root, op)
	}
	if err := json.NewEncoder(os.Stdout).Encode(out); err != nil {
		return 2
	}
	return 0
}

func posixErr(err error) string {
	if err == nil {
		return "OK"
	}
	if e, ok := err.(syscall.Errno); ok {
		if n := unix.ErrnoName(e); n != "" {
			return n
		}
	}
	if e, ok := err.(*os.PathError); ok {
		return posixErr(e.Err)
	}
	if e, ok := err.(*os.SyscallError); ok {
		return posixErr(e.Err)
	}
	if e, ok := err.(*net.OpError); ok {
		return posixErr(e.Err)
	}
	return err.Error()
}

var posixFlags = map[string]int{
	"O_RDONLY": unix.O_RDONLY, "O_WRONLY": unix.O_WRONLY, "O_RDWR": unix.O_RDWR, "O_CREAT": unix.O_CREAT,
	"O_EXCL": unix.O_EXCL, "O_TRUNC": unix.O_TRUNC, "O_APPEND": unix.O_APPEND, "O_DIRECTORY": unix.O_DIRECTORY,
	"O_NOFOLLOW": unix.O_NOFOLLOW, "O_NONBLOCK": unix.O_NONBLOCK, "O_SYNC": unix.O_SYNC, "O_DSYNC": unix.O_DSYNC,
	"O_NOATIME": unix.O_NOATIME, "O_PATH": unix.O_PATH, "O_CLOEXEC": unix.O_CLOEXEC, "O_NOCTTY": unix.O_NOCTTY,
	"XATTR_CREATE": unix.XATTR_CREATE, "XATTR_REPLACE": unix.XATTR_REPLACE,
	"RENAME_NOREPLACE": unix.RENAME_NOREPLACE, "RENAME_EXCHANGE": unix.RENAME_EXCHANGE,
}

func posixFlagsOf(s string) int {
	f := 0
	for _, n := range strings.Split(s, "|") {
		if v, ok := posixFlags[n]; ok {
			f |= v
		} else if x, err := strconv.Atoi(n); err == nil {
			f |= x
		} else {
			panic("unknown flag " + n)
		}
	}
	return f
}

func posixMode(s string) uint32 {
	m, err := strconv.ParseUint(s, 8, 32)
	if err != nil {
		panic("bad mode " + s)
	}
	return uint32(m)
}

func posixTime(s string) unix.Timespec {
	switch s {
	case "now":
		return unix.Timespec{Nsec: unix.UTIME_NOW}
	case "omit":
		return unix.Timespec{Nsec: unix.UTIME_OMIT}
	}
	sec, frac, _ := strings.Cut(s, ".")
	ts := unix.Timespec{}
	ts.Sec, _ = strconv.ParseInt(sec, 10, 64)
	if frac != "" {
		f, _ := strconv.ParseFloat("0."+frac, 64)
		ts.Nsec = int64(f * 1e9)
	}
	return ts
}

// posixStat describes what stat shows of st: type, mode, owner, link count, size (not of directories,
// whose sizes are each file system's own) and device numbers.
func posixStat(st *unix.Stat_t) string {
	s := fmt.Sprintf("mode=%o uid=%d gid=%d nlink=%d", st.Mode, st.Uid, st.Gid, st.Nlink)
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
	case unix.S_IFCHR, unix.S_IFBLK:
		s += fmt.Sprintf(" rdev=%d:%d", unix.Major(st.Rdev), unix.Minor(st.Rdev))
	default:
		s += fmt.Sprintf(" size=%d", st.Size)
	}
	return s
}

// posixOp runs one operation below root and describes its result: "OK" or the errno's name, then what
// it reports.
func posixOp(root string, f []string) string {
	p := func(i int) string { return filepath.Join(root, f[i]) }
	switch f[0] {
	case "ctime":
		// ctime PATH OP...: whether OP moves PATH's ctime and mtime; PATH>NEW: PATH's before, NEW's
		// after (OP renames PATH to NEW).
		before, after, ok := strings.Cut(f[1], ">")
		if !ok {
			after = before
		}
		var a, b unix.Stat_t
		if err := unix.Lstat(filepath.Join(root, before), &a); err != nil {
			return "before: " + posixErr(err)
		}
		time.Sleep(10 * time.Millisecond) // beyond the coarse clock's tick, for file systems that use it
		r := posixOp(root, f[2:])
		if err := unix.Lstat(filepath.Join(root, after), &b); err != nil {
			return r + " after: " + posixErr(err)
		}
		moved := func(x, y unix.Timespec) string {
			if x == y {
				return "same"
			}
			return "moved"
		}
		return r + " ctime=" + moved(a.Ctim, b.Ctim) + " mtime=" + moved(a.Mtim, b.Mtim)
	case "stat", "lstat":
		var st unix.Stat_t
		var err error
		if f[0] == "stat" {
			err = unix.Stat(p(1), &st)
		} else {
			err = unix.Lstat(p(1), &st)
		}
		if err != nil {
			return posixErr(err)
		}
		return "OK " + posixStat(&st)
	case "times":
		var st unix.Stat_t
		if err := unix.Lstat(p(1), &st); err != nil {
			return posixErr(err)
		}
		return fmt.Sprintf("OK atime=%d.%09d mtime=%d.%09d", st.Atim.Sec, st.Atim.Nsec, st.Mtim.Sec, st.Mtim.Nsec)
	case "chmod":
		return posixErr(unix.Fchmodat(unix.AT_FDCWD, p(1), posixMode(f[2]), 0))
	case "chown":
		uid, _ := strconv.Atoi(f[2])
		gid, _ := strconv.Atoi(f[3])
		return posixErr(unix.Lchown(p(1), uid, gid))
	case "link":
		return posixErr(unix.Link(p(1), p(2)))
	case "mkdir":
		return posixErr(unix.Mkdir(p(1), posixMode(f[2])))
	case "mkfifo":
		return posixErr(unix.Mkfifo(p(1), posixMode(f[2])))
	case "mknod":
		typ := map[string]uint32{"c": unix.S_IFCHR, "b": unix.S_IFBLK, "p": unix.S_IFIFO, "s": unix.S_IFSOCK, "f": unix.S_IFREG}[f[2]]
		maj, _ := strconv.Atoi(f[4])
		min, _ := strconv.Atoi(f[5])
		return posixErr(unix.Mknod(p(1), typ|posixMode(f[3]), int(unix.Mkdev(uint32(maj), uint32(min)))))
	case "open":
		mode := uint32(0)
		if len(f) > 3 {
			mode = posixMode(f[3])
		}
		fd, err := unix.Open(p(1), posixFlagsOf(f[2]), mode)
		if err == nil {
			unix.Close(fd)
		}
		return posixErr(err)
	case "write", "append":
		flags := unix.O_WRONLY
		if f[0] == "append" {
			flags |= unix.O_APPEND
		}
		fd, err := unix.Open(p(1), flags, 0)
		if err != nil {
			return posixErr(err)
		}
		defer unix.Close(fd)
		_, err = unix.Write(fd, []byte(f[2]))
		return posixErr(err)
	case "read":
		data, err := os.ReadFile(p(1))
		if err != nil {
			return posixErr(err)
		}
		return fmt.Sprintf("OK %q", data)
	case "readlink":
		t, err := os.Readlink(p(1))
		if err != nil {
			return posixErr(err)
		}
		return "OK " + t
	case "readdir":
		ents, err := os.ReadDir(p(1))
		if err != nil {
			return posixErr(err)
		}
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		return "OK " + strings.Join(names, ",")
	case "rename":
		return posixErr(unix.Rename(p(1), p(2)))
	case "renamex":
		return posixErr(unix.Renameat2(unix.AT_FDCWD, p(1), unix.AT_FDCWD, p(2), uint(posixFlagsOf(f[3]))))
	case "rmdir":
		return posixErr(unix.Rmdir(p(1)))
	case "symlink":
		return posixErr(unix.Symlink(f[1], p(2)))
	case "truncate":
		size, _ := strconv.ParseInt(f[2], 10, 64)
		return posixErr(unix.Truncate(p(1), size))
	case "unlink":
		return posixErr(unix.Unlink(p(1)))
	case "utimens":
		return posixErr(unix.UtimesNanoAt(unix.AT_FDCWD, p(1), []unix.Timespec{posixTime(f[2]), posixTime(f[3])}, unix.AT_SYMLINK_NOFOLLOW))
	case "setxattr":
		val := []byte(f[3])
		if f[3] == "-" {
			val = nil
		}
		flags := 0
		if f[4] != "0" {
			flags = posixFlagsOf(f[4])
		}
		return posixErr(unix.Lsetxattr(p(1), f[2], val, flags))
	case "getxattr":
		buf := make([]byte, 1024)
		n, err := unix.Lgetxattr(p(1), f[2], buf)
		if err != nil {
			return posixErr(err)
		}
		return fmt.Sprintf("OK %q", buf[:n])
	case "removexattr":
		return posixErr(unix.Lremovexattr(p(1), f[2]))
	case "listxattr":
		return posixListxattr(p(1))
	case "bindconnect":
		// A UNIX socket bound in the tree, connected to and used through its name.
		l, err := net.ListenUnix("unix", &net.UnixAddr{Name: p(1), Net: "unix"})
		if err != nil {
			return posixErr(err)
		}
		l.SetUnlinkOnClose(false)
		defer l.Close()
		c, err := net.Dial("unix", p(1))
		if err != nil {
			return "connect: " + posixErr(err)
		}
		defer c.Close()
		s, err := l.Accept()
		if err != nil {
			return "accept: " + posixErr(err)
		}
		defer s.Close()
		if _, err := c.Write([]byte("ping")); err != nil {
			return "write: " + posixErr(err)
		}
		buf := make([]byte, 4)
		if _, err := io.ReadFull(s, buf); err != nil {
			return "read: " + posixErr(err)
		}
		return "OK " + string(buf)
	}
	panic("unknown operation " + f[0])
}

// posixListxattr lists the xattr names of p that the suite compares: user.* and trusted.* but
// overlayfs's own.
func posixListxattr(p string) string {
	buf := make([]byte, 4096)
	n, err := unix.Llistxattr(p, buf)
	if err != nil {
		return posixErr(err)
	}
	var names []string
	for _, x := range strings.Split(string(buf[:n]), "\x00") {
		if (strings.HasPrefix(x, "user.") || strings.HasPrefix(x, "trusted.")) && !strings.HasPrefix(x, "trusted.overlay.") {
			names = append(names, x)
		}
	}
	slices.Sort(names)
	return "OK " + strings.Join(names, ",")
}

// posixTree lists the tree at root, one line per path, for comparison. Directories whose link count
// is in skipNlink are listed without it.
func posixTree(t *testing.T, root string, skipNlink map[string]bool) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		if skipNlink[rel] {
			st.Nlink = 0
		}
		s := rel + " " + posixStat(&st)
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFREG:
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			s += fmt.Sprintf(" %q", data)
		case unix.S_IFLNK:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			s += " ->" + target
		}
		if x := posixListxattr(p); x != "OK " {
			s += " xattrs=" + strings.TrimPrefix(x, "OK ")
		}
		out = append(out, s)
		return nil
	})
	if err != nil {
		t.Fatalf("walking %s: %v", root, err)
	}
	return out
}

// posixHelperBin is a copy of the test binary that every user may run (the go tool's build directory
// is private to root).
var posixHelperBin struct {
	once sync.Once
	path string
	err  error
}

func posixBinary(t *testing.T) string {
	t.Helper()
	posixHelperBin.once.Do(func() {
		dir, err := os.MkdirTemp("", "imgfs-posix-helper-")
		if err != nil {
			posixHelperBin.err = err
			return
		}
		if err := os.Chmod(dir, 0o755); err != nil {
			posixHelperBin.err = err
			return
		}
		self, err := os.ReadFile("/proc/self/exe")
		if err != nil {
			posixHelperBin.err = err
			return
		}
		p := filepath.Join(dir, "helper")
		posixHelperBin.path, posixHelperBin.err = p, os.WriteFile(p, self, 0o755)
	})
	if posixHelperBin.err != nil {
		t.Fatal(posixHelperBin.err)
	}
	return posixHelperBin.path
}

// posixRun runs ops as uid (0: root) below root in a child process and returns their results.
func posixRun(t *testing.T, uid uint32, root string, ops [][]string) []string {
	t.Helper()
	req, _ := json.Marshal(posixRequest{Root: root, Ops: ops})
	cmd := exec.Command(posixBinary(t))
	cmd.Env = append(os.Environ(), "IMGFS_POSIX_HELPER=1")
	cmd.Dir = "/"
	cmd.Stdin = bytes.NewReader(req)
	if uid != 0 {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: uid, Groups: []uint32{}}}
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	outb, err := cmd.Output()
	if err != nil {
		t.Fatalf("helper as %d: %v\n%s", uid, err, stderr.String())
	}
	var out []string
	if err := json.Unmarshal(outb, &out); err != nil || len(out) != len(ops) {
		t.Fatalf("helper as %d answered %q: %v", uid, outb, err)
	}
	return out
}

// posixScript runs the lines of a scenario on root and returns one result per line.
func posixScript(t *testing.T, root string, lines []string) []string {
	t.Helper()
	var out []string
	for i := 0; i < len(lines); {
		uid, _ := posixLine(lines[i])
		j := i
		var ops [][]string
		for ; j < len(lines); j++ {
			u, op := posixLine(lines[j])
			if u != uid {
				break
			}
			ops = append(ops, op)
		}
		out = append(out, posixRun(t, uid, root, ops)...)
		i = j
	}
	return out
}

func posixLine(l string) (uint32, []string) {
	f := strings.Fields(l)
	if strings.HasPrefix(f[0], "@") {
		uid, err := strconv.Atoi(f[0][1:])
		if err != nil {
			panic("bad user in " + l)
		}
		return uint32(uid), f[1:]
	}
	return 0, f
}

// posixDir makes a directory that every user can reach: t.TempDir's are private.
func posixDir(t *testing.T) string {
	t.Helper()
	d := t.TempDir()
	for p := d; p != os.TempDir() && p != "/"; p = filepath.Dir(p) {
		if err := os.Chmod(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return d
}

// posixTrees makes the three trees of the suite: a plain directory holding posixImage, the kernel's
// overlayfs over it extracted, and a writable imgfs mount of it, all reachable by every user.
func posixTrees(t *testing.T) (plain, ovl, mnt string) {
	t.Helper()
	base := posixDir(t)
	plain = filepath.Join(base, "plain")
	lower, upper, work := filepath.Join(base, "lower"), filepath.Join(base, "upper"), filepath.Join(base, "work")
	ovl = filepath.Join(base, "ovl")
	for _, d := range []string{plain, lower, upper, work, ovl} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	extract(t, plain, posixImage)
	extract(t, lower, posixImage)
	for _, r := range []string{plain, lower} {
		if err := unix.Chmod(filepath.Join(r, "pub"), 0o777); err != nil {
			t.Fatal(err)
		}
	}
	// index=on: overlayfs keeps the names of a hard-linked lower file one file when it copies it up.
	opts := "lowerdir=" + lower + ",upperdir=" + upper + ",workdir=" + work + ",index=on"
	if err := unix.Mount("overlay", ovl, "overlay", 0, opts); err != nil {
		t.Fatalf("mount overlay %s: %v", opts, err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(ovl, 0); err != nil {
			t.Errorf("unmount overlay: %v", err)
		}
	})
	v, dir := newUpperView(t, posixImage...)
	mnt = filepath.Join(base, "imgfs")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	srv, err := mount(mnt, newFileSystem(v, Options{UpperDir: dir}), Options{DirectMount: true, FsName: "imgfs-test", AllowOther: true})
	if err != nil {
		t.Fatalf("mount imgfs: %v", err)
	}
	t.Cleanup(func() {
		if err := srv.Unmount(); err != nil {
			t.Errorf("unmount: %v", err)
		}
		srv.Wait()
	})
	return plain, ovl, mnt
}

// TestPosixDiff runs each scenario on a plain directory, on the kernel's overlayfs and on imgfs, and
// compares every result and the trees they leave.
func TestPosixDiff(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("needs root: mounts overlayfs, runs operations as other users")
	}
	for _, sc := range posixScenarios {
		t.Run(sc.name, func(t *testing.T) {
			t.Parallel() // each scenario has its own trees and mounts
			plain, ovl, mnt := posixTrees(t)
			want := posixScript(t, plain, sc.ops)
			kern := posixScript(t, ovl, sc.ops)
			got := posixScript(t, mnt, sc.ops)
			for i, l := range sc.ops {
				if got[i] == kern[i] && posixMergedDir.MatchString(got[i]) {
					// A directory merged from the layer and the upper directory: nlink 1 on overlayfs.
					want[i] = posixNlink.ReplaceAllString(want[i], "nlink=1")
				}
				t.Logf("%s: %s", l, got[i])
				if got[i] != want[i] || got[i] != kern[i] {
					t.Errorf("%s:\n\timgfs     %s\n\toverlayfs %s\n\tplain     %s", l, got[i], kern[i], want[i])
				}
			}
			treeK := posixTree(t, ovl, nil)
			treeG := posixTree(t, mnt, nil)
			if !slices.Equal(treeG, treeK) {
				t.Errorf("trees differ:\nimgfs:\n%s\noverlayfs:\n%s", strings.Join(treeG, "\n"), strings.Join(treeK, "\n"))
			}
			// Merged directories report nlink 1 on overlayfs (and imgfs): no count to compare there.
			merged := map[string]bool{}
			for _, l := range treeK {
				if f := strings.Fields(l); len(f[1]) == len("mode=40755") && f[1][5] == '4' && slices.Contains(f, "nlink=1") { // a directory
					merged[f[0]] = true
				}
			}
			treeP := posixTree(t, plain, merged)
			treeG = posixTree(t, mnt, merged)
			if !slices.Equal(treeG, treeP) {
				t.Errorf("trees differ:\nimgfs:\n%s\nplain directory:\n%s", strings.Join(treeG, "\n"), strings.Join(treeP, "\n"))
			}
		})
	}
}

// TestPosixDirRenameNlink moves a lower directory whose subdirectory a change had made merged (nlink
// 1): after the move nothing merges below it, and the subdirectory counts its own subdirectories again,
// as on a plain directory. (overlayfs refuses to move a merged directory without redirect_dir: EXDEV.)
func TestPosixDirRenameNlink(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("needs root: mounts overlayfs")
	}
	plain, _, mnt := posixTrees(t)
	ops := []string{
		"stat lower/sub",
		"open lower/sub/deeper/new O_WRONLY|O_CREAT 0644",
		"stat lower/sub",
		"rename lower moved",
		"stat moved/sub",
		"stat moved/sub/deeper",
		"stat moved",
	}
	want := posixScript(t, plain, ops)
	got := posixScript(t, mnt, ops)
	if got[2] != "OK mode=40755 uid=0 gid=0 nlink=1" {
		t.Errorf("lower/sub merged: %s, want nlink 1 (as overlayfs)", got[2])
	}
	for i := 3; i < len(ops); i++ {
		if got[i] != want[i] {
			t.Errorf("%s: %s on imgfs, %s on the plain directory", ops[i], got[i], want[i])
		}
	}
}
