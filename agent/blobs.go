package agent

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/ouroboros-cloud/ouro/driver"
)

// fetchError marks a failure to fetch image content from the control
// plane; a driver Create failing with it (wrapped) fails the instance with
// reason ImageFetchFailed rather than DriverError.
type fetchError struct {
	digest string
	err    error
}

func (e *fetchError) Error() string { return fmt.Sprintf("fetch blob %s: %v", e.digest, e.err) }
func (e *fetchError) Unwrap() error { return e.err }

// Blobs returns the source of image layers drivers should use: it reads
// blobs from the API server with the agent's current credentials. Build
// the drivers with it after New and register them before Run.
func (a *Agent) Blobs() driver.BlobSource { return agentBlobs{a} }

type agentBlobs struct{ a *Agent }

// Open returns a blob's content from the API server.
func (b agentBlobs) Open(ctx context.Context, digest string) (io.ReadCloser, error) {
	cl := b.a.sess.Client()
	if cl == nil {
		return nil, &fetchError{digest, errors.New("the agent has not joined yet")}
	}
	rc, err := cl.Open(ctx, digest)
	if err != nil {
		return nil, &fetchError{digest, err}
	}
	return &blobReader{rc: rc, digest: digest}, nil
}

// blobReader marks read errors of a blob as fetch errors too.
type blobReader struct {
	rc     io.ReadCloser
	digest string
}

func (r *blobReader) Read(p []byte) (int, error) {
	n, err := r.rc.Read(p)
	if err != nil && err != io.EOF {
		err = &fetchError{r.digest, err}
	}
	return n, err
}

func (r *blobReader) Close() error { return r.rc.Close() }
