package client

import (
	"errors"

	"github.com/ouroboros-cloud/ouro/api"
)

func asAPIError(err error) *api.Error {
	var e *api.Error
	if errors.As(err, &e) {
		return e
	}
	return nil
}
