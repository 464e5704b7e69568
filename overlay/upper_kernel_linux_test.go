package overlay

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/imgfs/imgfs/index"
	"github.com/imgfs/imgfs/internal/fakelayer"
	"github.com/imgfs/imgfs/internal/tartest"
	"golang.org/x/sys/unix"
)

// upErrno maps an error of the view to the errno a file system would return.
func upErrno(err error) unix.Errno {
	if err == nil {
		return 0
	}
	if e, ok := errors.AsType[unix.Errno](err); ok {
		return e
	}
	for _, m := range []struct {
		err error
		e   unix.Errno
	}{
		{ErrNotExist, unix.ENOENT}, {ErrExist, unix.EEXIST}, {ErrNotDir, unix.ENOTDIR},
		{ErrIsDir, unix.EISDIR}, {ErrNotEmpty, unix.ENOTEMPTY}, {ErrInvalid, unix.EINVAL},
		{ErrReservedName, unix.EINVAL},
	} {
		if errors.Is(err, m.err) {
			return m.e
		}
	}
	return unix.EIO
}

// upKernelFS applies steps of upDo's language to a kernel overlayfs mount, resolving paths below its
// root without following symlinks, with the view's ownership rules for new entries.
type upKernelFS struct{ root int }

func (k upKernelFS) parent(p string) (int, string, error) {
	dir, base := ".", p
	if i := strings.LastIndexByte(p, '/'); i >= 0 {
		dir, base = p[:i], p[i+1:]
	}
	fd, err := unix.Openat2(k.root, dir, &unix.OpenHow{Flags: unix.O_PATH | unix.O_DIRECTORY | unix.O_CLOEXEC, Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS})
	if err == unix.ELOOP {
		err = unix.ENOTDIR
	}
	return fd, base, err
}

// own gives a new entry the view's owner and mode.
func (k upKernelFS) own(pfd int, name string, mode uint32, dir bool) error {
	var pst unix.Stat_t
	if err := unix.Fstat(pfd, &pst); err != nil {
		return err
	}
	gid := upCaller.GID
	if pst.Mode&unix.S_ISGID != 0 {
		gid = pst.Gid
		if dir {
			mode |= unix.S_ISGID
		}
	}
	if err := unix.Fchownat(pfd, name, int(upCaller.UID), int(gid), unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return err
	}
	if mode == 0 {
		return nil
	}
	return unix.Fchmodat(pfd, name, mode, unix.AT_SYMLINK_NOFOLLOW)
}

func (k upKernelFS) do(step string) error {
	op, arg, _ := strings.Cut(step, " ")
	a1, a2, _ := strings.Cut(arg, " ")
	p, val := a1, ""
	switch op {
	case "sym":
		p, val, _ = strings.Cut(a1, "->")
	case "touch":
		p, val, _ = strings.Cut(a1, "=")
	case "write":
		p, val, _ = strings.Cut(arg, "@")
	}
	pfd, name, err := k.parent(p)
	if err != nil {
		return err
	}
	defer unix.Close(pfd)
	switch op {
	case "rm":
		return unix.Unlinkat(pfd, name, 0)
	case "rmdir":
		return unix.Unlinkat(pfd, name, unix.AT_REMOVEDIR)
	case "mkdir":
		if err := unix.Mkdirat(pfd, name, 0o700); err != nil {
			return err
		}
		return k.own(pfd, name, 0o755, true)
	case "touch":
		fd, err := unix.Openat(pfd, name, unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
		if err != nil {
			return err
		}
		_, err = unix.Write(fd, []byte(val))
		unix.Close(fd)
		if err != nil {
			return err
		}
		return k.own(pfd, name, 0o644, false)
	case "sym":
		if err := unix.Symlinkat(val, pfd, name); err != nil {
			return err
		}
		return k.own(pfd, name, 0, false)
	case "fifo":
		if err := unix.Mknodat(pfd, name, unix.S_IFIFO|0o600, 0); err != nil {
			return err
		}
		return k.own(pfd, name, 0o640, false)
	case "mv", "mvnr", "xchg", "ln":
		if op == "ln" {
			// linkat resolves the old path before the new one.
			var st unix.Stat_t
			if err := unix.Fstatat(pfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
				return err
			}
		}
		qfd, qname, err := k.parent(a2)
		if err != nil {
			return err
		}
		defer unix.Close(qfd)
		if op == "ln" {
			return unix.Linkat(pfd, name, qfd, qname, 0)
		}
		flags := map[string]uint{"mv": 0, "mvnr": unix.RENAME_NOREPLACE, "xchg": unix.RENAME_EXCHANGE}[op]
		return unix.Renameat2(pfd, name, qfd, qname, flags)
	case "chmod":
		m, _ := strconv.ParseUint(a2, 8, 32)
		return unix.Fchmodat(pfd, name, uint32(m), unix.AT_SYMLINK_NOFOLLOW)
	case "chown":
		us, gs, _ := strings.Cut(a2, ":")
		uid, _ := strconv.Atoi(us)
		gid, _ := strconv.Atoi(gs)
		return unix.Fchownat(pfd, name, uid, gid, unix.AT_SYMLINK_NOFOLLOW)
	case "trunc", "write":
		fd, err := unix.Openat(pfd, name, unix.O_WRONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		if op == "trunc" {
			size, _ := strconv.ParseInt(a2, 10, 64)
			return unix.Ftruncate(fd, size)
		}
		offs, data, _ := strings.Cut(val, "=")
		off, _ := strconv.ParseInt(offs, 10, 64)
		_, err = unix.Pwrite(fd, []byte(data), off)
		return err
	case "setx", "rmx":
		path := procFD(pfd) + "/" + name
		if op == "rmx" {
			return unix.Lremovexattr(path, a2)
		}
		k, v, _ := strings.Cut(a2, "=")
		return unix.Lsetxattr(path, k, []byte(v), 0)
	}
	return fmt.Errorf("unknown step %q", step)
}

// upGenStep makes a random step over the names of fakelayer.GenStack, skipping those whose outcome depends on
// following a symlink or opening a special file (the view never follows; the kernel's calls do); ""
// when it found none to make.
func upGenStep(c fakelayer.Chooser, v *View) string {
	for range 20 {
		p, q := fakelayer.GenPath(c, 1), fakelayer.GenPath(c, 1)
		var st string
		switch c.IntN(18) {
		case 0, 1:
			st = fmt.Sprintf("touch %s=D%d", p, c.IntN(100))
		case 2:
			st = "mkdir " + p
		case 3:
			st = "rm " + p
		case 4:
			st = "rmdir " + p
		case 5, 6:
			st = "mv " + p + " " + q
		case 7:
			st = "mvnr " + p + " " + q
		case 8:
			st = "xchg " + p + " " + q
		case 9:
			st = "ln " + p + " " + q
		case 10:
			st = "sym " + p + "->/nowhere/" + q
		case 11:
			st = fmt.Sprintf("chmod %s %o", p, []int{0o600, 0o755, 0o4711}[c.IntN(3)])
		case 12:
			st = fmt.Sprintf("write %s@%d=W%d", p, c.IntN(6), c.IntN(100))
		case 13:
			st = fmt.Sprintf("trunc %s %d", p, c.IntN(5))
		case 14:
			st = fmt.Sprintf("setx %s user.n=%d", p, c.IntN(100))
		case 15:
			st = "rmx " + p + " user.k"
		case 16:
			st = "fifo " + p
		case 17:
			st = fmt.Sprintf("chown %s %d:%d", p, c.IntN(3), c.IntN(3))
		}
		a, err := lookupPath(v, p)
		op, _, _ := strings.Cut(st, " ")
		if err == nil {
			switch {
			case a.Type == index.TypeSymlink && op != "rm" && op != "mv" && op != "mvnr" && op != "xchg" && op != "ln" && op != "chown":
				continue
			case a.Type != index.TypeRegular && (op == "write" || op == "trunc"):
				continue
			case a.Type == index.TypeDir && op == "ln":
				continue
			case a.Type != index.TypeRegular && a.Type != index.TypeDir && op == "rmx":
				continue // user.* xattrs of special files: EPERM from the kernel, "none" from the view
			}
		}
		return st
	}
	return ""
}

// TestUpperRandomOpsMatchKernel applies random steps to the view and to the kernel's overlayfs over the
// same tree, and compares every step's outcome and the final trees; then it checks the upper directory
// the view wrote with a second kernel mount, and a remount of the view.
func TestUpperRandomOpsMatchKernel(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount overlayfs")
	}
	seeds := 40
	if s := os.Getenv("IMGFS_UPPER_SEEDS"); s != "" {
		seeds, _ = strconv.Atoi(s)
	}
	if testing.Short() {
		seeds = 8
	}
	first := 0
	if s := os.Getenv("IMGFS_UPPER_SEED"); s != "" {
		first, _ = strconv.Atoi(s)
	}
	for seed := first; seed < first+seeds; seed++ {
		r := rand.New(rand.NewPCG(uint64(seed), 7))
		var stacks [][]tartest.Member
		for _, l := range fakelayer.GenStack(r) {
			// The kernel (without index=on) breaks lower hard links on copy-up; the view keeps them.
			l = slices.DeleteFunc(l, func(m tartest.Member) bool {
				// A link to AUFS's .wh..wh.dev shows as a device 0/0, which extracted is a whiteout.
				return m.Type == tar.TypeLink && (!upIndexOn || strings.HasPrefix(m.Linkname, ".wh..wh.dev"))
			})
			stacks = append(stacks, l)
		}
		layers := layersOf(stacks...)
		ro, err := New(layers, Options{})
		if err != nil {
			t.Fatal(err)
		}
		tmp := upTempDir(t)
		lower, kupper, kwork, mnt := filepath.Join(tmp, "lower"), filepath.Join(tmp, "kupper"), filepath.Join(tmp, "kwork"), filepath.Join(tmp, "mnt")
		upExtract(t, ro, lower)
		for _, d := range []string{kupper, kwork, mnt} {
			if err := os.Mkdir(d, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		// The kernel's upper root shows as the merged root: give it the layers' root attributes.
		ra, _ := ro.Attr(Root)
		os.Lchown(kupper, int(ra.UID), int(ra.GID))
		os.Chmod(kupper, os.FileMode(ra.Mode&0o777))
		if xs, _ := ro.Xattrs(Root); len(xs) > 0 {
			for _, x := range xs {
				unix.Lsetxattr(kupper, x.Name, x.Value, 0)
			}
		}
		opts := "lowerdir=" + lower + ",upperdir=" + kupper + ",workdir=" + kwork + ",redirect_dir=on,metacopy=off,index=" + map[bool]string{false: "off", true: "on"}[upIndexOn]
		if err := unix.Mount("overlay", mnt, "overlay", 0, opts); err != nil {
			t.Fatalf("mount overlay: %v", err)
		}
		root, err := unix.Open(mnt, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		k := upKernelFS{root}
		dir := filepath.Join(tmp, "upper")
		// Seeds cycle through the marker forms (the kernel does not fully read xattr whiteouts in an
		// upper directory, so only the view and its remount check that form).
		mode := upModes[seed%len(upModes)]
		v, u := upOpenMarkers(t, dir, layers, mode.markers())
		var done []string
		failed := false
		for i := range 40 {
			st := upGenStep(r, v)
			if st == "" {
				continue
			}
			_, target, _ := strings.Cut(st, " ")
			target, _, _ = strings.Cut(target, " ")
			_, lerr := lookupPath(v, target)
			ve, ke := upDo(v, st), k.do(st)
			done = append(done, fmt.Sprintf("%s -> %v", st, ve))
			g, w := upErrno(ve), upNorm(ke)
			if strings.HasPrefix(st, "rmx ") && ve == ErrNotExist && lerr == nil {
				g = unix.ENODATA // a missing xattr: fs answers ENODATA for the bare ErrNotExist
			}
			if g != w {
				t.Errorf("seed %d step %d %q: view %v (%v), kernel %v\nsteps:\n%s\nview:\n%s\nkernel:\n%s", seed, i, st, g, ve, w, strings.Join(done, "\n"),
					strings.Join(upRender(t, v), "\n"), strings.Join(upRenderDisk(t, mnt), "\n"))
				failed = true
				break
			}
		}
		if !failed {
			got, want := upRender(t, v), upRenderDisk(t, mnt)
			if !slices.Equal(got, want) {
				t.Errorf("seed %d: view:\n%s\nkernel:\n%s\nsteps:\n%s\nlayers:\n%s", seed, strings.Join(got, "\n"), strings.Join(want, "\n"), strings.Join(done, "\n"), fakelayer.Dump(layers))
				failed = true
			}
			if !failed {
				if !mode.xattrWh {
					upKernelOracle(t, layers, dir, got, mode.kernelUserxattr)
				}
				u.Close()
				v2, _ := upOpen(t, dir, layers)
				if again := upRender(t, v2); !slices.Equal(again, got) {
					t.Errorf("seed %d: remounted view differs:\n%s\nbefore:\n%s", seed, strings.Join(again, "\n"), strings.Join(got, "\n"))
				}
			}
		}
		unix.Close(root)
		if err := unix.Unmount(mnt, 0); err != nil {
			t.Fatal(err)
		}
		if t.Failed() {
			return
		}
	}
}

// upIndexOn keeps the layers' hard links and mounts the kernel with index=on (an experiment).
var upIndexOn = os.Getenv("IMGFS_UPPER_INDEX") != ""

// upNorm maps the kernel's errors to the view's: a symlink met while resolving a path is ENOTDIR.
func upNorm(err error) unix.Errno {
	if err == nil {
		return 0
	}
	e, ok := err.(unix.Errno)
	if !ok {
		return unix.EIO
	}
	if e == unix.ELOOP {
		return unix.ENOTDIR
	}
	return e
}

// TestUpperConcurrentChanges runs random steps from several goroutines while others walk and read the
// view (for -race and deadlocks), then checks that a remount shows the same tree.
func TestUpperConcurrentChanges(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(3, 4))
	layers := layersOf(fakelayer.GenStack(r)...)
	dir := t.TempDir()
	v, u := upOpen(t, dir, layers)
	done := make(chan struct{})
	errs := make(chan error, 8)
	for w := range 3 {
		go func() {
			r := rand.New(rand.NewPCG(uint64(w), 9))
			for range 150 {
				if st := upGenStep(r, v); st != "" {
					upDo(v, st)
				}
			}
			errs <- nil
		}()
	}
	for range 2 {
		go func() {
			for {
				select {
				case <-done:
					errs <- nil
					return
				default:
				}
				var walk func(n Node, depth int)
				walk = func(n Node, depth int) {
					d, err := v.ReadDir(n)
					if err != nil || depth > 5 {
						return
					}
					for i := 0; i < d.Len(); i++ {
						e := d.Entry(i)
						v.Lookup(n, e.Name)
						v.Attr(e.Node)
						v.Xattrs(e.Node)
						if f, err := v.Open(e.Node); err == nil {
							buf := make([]byte, 64)
							f.ReadAt(buf, 0)
							f.(io.Closer).Close()
						}
						if e.Type == index.TypeDir {
							walk(e.Node, depth+1)
						}
					}
				}
				walk(Root, 0)
			}
		}()
	}
	for range 3 {
		<-errs
	}
	close(done)
	for range 2 {
		<-errs
	}
	got := upRender(t, v)
	u.Close()
	v2, _ := upOpen(t, dir, layers)
	if again := upRender(t, v2); !slices.Equal(again, got) {
		t.Errorf("remounted view differs:\n%s\nbefore:\n%s", strings.Join(again, "\n"), strings.Join(got, "\n"))
	}
}

// FuzzUpperSteps runs steps chosen by the fuzzer over a layer stack chosen by it, and checks that
// nothing panics and that a remount shows the same tree.
func FuzzUpperSteps(f *testing.F) {
	for _, seed := range []string{"", "\x01\x02\x03\x04\x05\x06", "abcdefghijklmnopqrstuvwxyz0123456789", "\x05\x00\x05\x01\x05\x02\x0c\x07\x09"} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		c := fakelayer.NewByteChooser(b)
		layers := layersOf(fakelayer.GenStack(c)...)
		dir := t.TempDir()
		v, u := upOpen(t, dir, layers)
		for range 1 + c.IntN(30) {
			if st := upGenStep(c, v); st != "" {
				upDo(v, st)
			}
		}
		got := upRender(t, v)
		u.Close()
		v2, _ := upOpen(t, dir, layers)
		if again := upRender(t, v2); !slices.Equal(again, got) {
			t.Errorf("remounted view differs:\n%s\nbefore:\n%s", strings.Join(again, "\n"), strings.Join(got, "\n"))
		}
	})
}
