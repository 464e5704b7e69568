package fs

import (
	"sync"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fuse"
)

// Pause holds a writable mount's changes while something reads its upper directory (imgfs commit of a
// live mount). A request that waits for the pause to end can be interrupted: when the waiting process
// gets a signal, the kernel sends INTERRUPT and the request fails with EINTR. Without that, a process
// that is killed while it waits (SIGKILL included) could never exit: the kernel waits for the answer
// to a request it has already handed to the server, holding the process's files, and so its end of
// whatever connection would end the pause.
//
// Give a Pause to Mount in Options.Pause; the zero value is ready to use.
type Pause struct {
	mu      sync.Mutex
	idle    sync.Cond     // signaled when running drops to 0
	resumed chan struct{} // non-nil while paused; closed when the pause ends
	running int           // changes being served
}

// Pause waits until no change is being served and holds new ones until resume is called. A second
// Pause waits for the first to end.
func (p *Pause) Pause() (resume func()) {
	p.mu.Lock()
	for p.resumed != nil {
		ch := p.resumed
		p.mu.Unlock()
		<-ch
		p.mu.Lock()
	}
	ch := make(chan struct{})
	p.resumed = ch
	if p.idle.L == nil {
		p.idle.L = &p.mu
	}
	for p.running > 0 {
		p.idle.Wait()
	}
	p.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			p.mu.Lock()
			p.resumed = nil
			close(ch)
			p.mu.Unlock()
		})
	}
}

// enter waits while paused; it fails with EINTR when the request is interrupted meanwhile. A change
// that entered calls leave when done.
func (p *Pause) enter(cancel <-chan struct{}) fuse.Status {
	p.mu.Lock()
	for p.resumed != nil {
		ch := p.resumed
		p.mu.Unlock()
		select {
		case <-ch:
		case <-cancel:
			return fuse.EINTR
		}
		p.mu.Lock()
	}
	p.running++
	p.mu.Unlock()
	return fuse.OK
}

func (p *Pause) leave() {
	p.mu.Lock()
	p.running--
	if p.running == 0 && p.idle.L != nil {
		p.idle.Broadcast()
	}
	p.mu.Unlock()
}

// pausable serves a file system's changes through a Pause; every other request passes straight on.
type pausable struct {
	fuse.RawFileSystem
	p *Pause
}

func (f pausable) SetAttr(cancel <-chan struct{}, in *fuse.SetAttrIn, out *fuse.AttrOut) fuse.Status {
	if st := f.p.enter(cancel); st != fuse.OK {
		return st
	}
	defer f.p.leave()
	return f.RawFileSystem.SetAttr(cancel, in, out)
}

func (f pausable) Mknod(cancel <-chan struct{}, in *fuse.MknodIn, name string, out *fuse.EntryOut) fuse.Status {
	if st := f.p.enter(cancel); st != fuse.OK {
		return st
	}
	defer f.p.leave()
	return f.RawFileSystem.Mknod(cancel, in, name, out)
}

func (f pausable) Mkdir(cancel <-chan struct{}, in *fuse.MkdirIn, name string, out *fuse.EntryOut) fuse.Status {
	if st := f.p.enter(cancel); st != fuse.OK {
		return st
	}
	defer f.p.leave()
	return f.RawFileSystem.Mkdir(cancel, in, name, out)
}

func (f pausable) Unlink(cancel <-chan struct{}, h *fuse.InHeader, name string) fuse.Status {
	if st := f.p.enter(cancel); st != fuse.OK {
		return st
	}
	defer f.p.leave()
	return f.RawFileSystem.Unlink(cancel, h, name)
}

func (f pausable) Rmdir(cancel <-chan struct{}, h *fuse.InHeader, name string) fuse.Status {
	if st := f.p.enter(cancel); st != fuse.OK {
		return st
	}
	defer f.p.leave()
	return f.RawFileSystem.Rmdir(cancel, h, name)
}

func (f pausable) Rename(cancel <-chan struct{}, in *fuse.RenameIn, oldName, newName string) fuse.Status {
	if st := f.p.enter(cancel); st != fuse.OK {
		return st
	}
	defer f.p.leave()
	return f.RawFileSystem.Rename(cancel, in, oldName, newName)
}

func (f pausable) Link(cancel <-chan struct{}, in *fuse.LinkIn, name string, out *fuse.EntryOut) fuse.Status {
	if st := f.p.enter(cancel); st != fuse.OK {
		return st
	}
	defer f.p.leave()
	return f.RawFileSystem.Link(cancel, in, name, out)
}

func (f pausable) Symlink(cancel <-chan struct{}, h *fuse.InHeader, target, name string, out *fuse.EntryOut) fuse.Status {
	if st := f.p.enter(cancel); st != fuse.OK {
		return st
	}
	defer f.p.leave()
	return f.RawFileSystem.Symlink(cancel, h, target, name, out)
}

func (f pausable) SetXAttr(cancel <-chan struct{}, in *fuse.SetXAttrIn, attr string, data []byte) fuse.Status {
	if st := f.p.enter(cancel); st != fuse.OK {
		return st
	}
	defer f.p.leave()
	return f.RawFileSystem.SetXAttr(cancel, in, attr, data)
}

func (f pausable) RemoveXAttr(cancel <-chan struct{}, h *fuse.InHeader, attr string) fuse.Status {
	if st := f.p.enter(cancel); st != fuse.OK {
		return st
	}
	defer f.p.leave()
	return f.RawFileSystem.RemoveXAttr(cancel, h, attr)
}

func (f pausable) Create(cancel <-chan struct{}, in *fuse.CreateIn, name string, out *fuse.CreateOut) fuse.Status {
	if st := f.p.enter(cancel); st != fuse.OK {
		return st
	}
	defer f.p.leave()
	return f.RawFileSystem.Create(cancel, in, name, out)
}

func (f pausable) Tmpfile(cancel <-chan struct{}, in *fuse.CreateIn, out *fuse.CreateOut) fuse.Status {
	if st := f.p.enter(cancel); st != fuse.OK {
		return st
	}
	defer f.p.leave()
	return f.RawFileSystem.Tmpfile(cancel, in, out)
}

// Open is a change when it opens for writing or truncates (a lower file is copied up).
func (f pausable) Open(cancel <-chan struct{}, in *fuse.OpenIn, out *fuse.OpenOut) fuse.Status {
	if in.Flags&(syscall.O_ACCMODE|syscall.O_TRUNC) != 0 {
		if st := f.p.enter(cancel); st != fuse.OK {
			return st
		}
		defer f.p.leave()
	}
	return f.RawFileSystem.Open(cancel, in, out)
}

func (f pausable) Write(cancel <-chan struct{}, in *fuse.WriteIn, data []byte) (uint32, fuse.Status) {
	if st := f.p.enter(cancel); st != fuse.OK {
		return 0, st
	}
	defer f.p.leave()
	return f.RawFileSystem.Write(cancel, in, data)
}

func (f pausable) Writev(cancel <-chan struct{}, in *fuse.WriteIn, data [][]byte) (uint32, fuse.Status) {
	if st := f.p.enter(cancel); st != fuse.OK {
		return 0, st
	}
	defer f.p.leave()
	return f.RawFileSystem.Writev(cancel, in, data)
}

func (f pausable) CopyFileRange(cancel <-chan struct{}, in *fuse.CopyFileRangeIn) (uint32, fuse.Status) {
	if st := f.p.enter(cancel); st != fuse.OK {
		return 0, st
	}
	defer f.p.leave()
	return f.RawFileSystem.CopyFileRange(cancel, in)
}

func (f pausable) Fallocate(cancel <-chan struct{}, in *fuse.FallocateIn) fuse.Status {
	if st := f.p.enter(cancel); st != fuse.OK {
		return st
	}
	defer f.p.leave()
	return f.RawFileSystem.Fallocate(cancel, in)
}

// Fsync waits too: the view's sync waits for a pause of its own.
func (f pausable) Fsync(cancel <-chan struct{}, in *fuse.FsyncIn) fuse.Status {
	if st := f.p.enter(cancel); st != fuse.OK {
		return st
	}
	defer f.p.leave()
	return f.RawFileSystem.Fsync(cancel, in)
}
