package stomp

// frameErrors are the Reader's errors: malformed or oversize input.
var frameErrors = []error{
	ErrLineTooLong, ErrTooManyHeaders, ErrHeadersTooLarge, ErrBodyTooLarge, ErrFrameTooLarge, ErrBadContentLength,
	ErrMalformedCommand, ErrMalformedHeader, ErrBadEscape, ErrMissingNUL,
}
