package client

import (
	"context"
	"io"
	"net/http"
)

func blobPath(digest string) string { return "/v1/blobs/" + digest }

// HasBlob reports whether the server holds a blob the caller may read. A
// blob only images of other projects refer to is reported missing, as the
// server answers for it; uploading it again is harmless.
func (c *Client) HasBlob(ctx context.Context, digest string) (bool, error) {
	resp, err := c.send(ctx, request{method: http.MethodHead, path: blobPath(digest), retries: 3})
	if err != nil {
		if e := asAPIError(err); e != nil && e.Status == http.StatusNotFound {
			return false, nil
		}
		return false, err
	}
	resp.Body.Close()
	return true, nil
}

// PutBlob uploads size bytes from r as the blob digest. The server refuses
// content that does not hash to digest.
func (c *Client) PutBlob(ctx context.Context, digest string, size int64, r io.Reader) error {
	resp, err := c.send(ctx, request{method: http.MethodPut, path: blobPath(digest), reader: r, size: size,
		ctype: "application/octet-stream", stream: true})
	if err != nil {
		return err
	}
	resp.Body.Close()
	return nil
}

// Open returns a blob's content; the caller verifies its digest. It makes
// Client a driver.BlobSource.
func (c *Client) Open(ctx context.Context, digest string) (io.ReadCloser, error) {
	resp, err := c.send(ctx, request{method: http.MethodGet, path: blobPath(digest), stream: true, retries: 3})
	if err != nil {
		return nil, err
	}
	return resp.Body, nil
}
