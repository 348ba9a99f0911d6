package container

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// dirNotifier tells when a file appears in a directory (created, or
// renamed into it), so that waiting for a file written by another
// process needs no polling interval.
type dirNotifier struct {
	f *os.File
	// C receives a value, without blocking, after each batch of events.
	C chan struct{}
}

// notifyDir watches dir for files created in, renamed into or closed
// after writing in it. Close ends it.
func notifyDir(dir string) (*dirNotifier, error) {
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("inotify: %w", err)
	}
	if _, err := unix.InotifyAddWatch(fd, dir, unix.IN_CREATE|unix.IN_MOVED_TO|unix.IN_CLOSE_WRITE); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("inotify %s: %w", dir, err)
	}
	// A non-blocking descriptor goes to the runtime's poller: Read
	// parks the goroutine, and Close wakes it.
	n := &dirNotifier{f: os.NewFile(uintptr(fd), "inotify"), C: make(chan struct{}, 1)}
	go n.read()
	return n, nil
}

func (n *dirNotifier) read() {
	buf := make([]byte, 4096)
	for {
		if _, err := n.f.Read(buf); err != nil {
			return
		}
		select {
		case n.C <- struct{}{}:
		default:
		}
	}
}

// Close stops watching.
func (n *dirNotifier) Close() error { return n.f.Close() }
