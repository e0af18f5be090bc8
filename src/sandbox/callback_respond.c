/* The callback bridge's answers to the sandboxed client: one whole HTTP/1.1 response per
 * connection (Connection: close), JSON errors with `retryable` on 502/503, and the 409
 * "indeterminate" answer for an unsafe request whose upstream outcome is unknown. */
#include "callback_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

static const char *reason(int status)
{
	switch (status) {
	case 200:
		return "OK";
	case 201:
		return "Created";
	case 204:
		return "No Content";
	case 400:
		return "Bad Request";
	case 401:
		return "Unauthorized";
	case 403:
		return "Forbidden";
	case 404:
		return "Not Found";
	case 409:
		return "Conflict";
	case 413:
		return "Payload Too Large";
	case 415:
		return "Unsupported Media Type";
	case 421:
		return "Misdirected Request";
	case 431:
		return "Request Header Fields Too Large";
	case 500:
		return "Internal Server Error";
	case 501:
		return "Not Implemented";
	case 502:
		return "Bad Gateway";
	case 503:
		return "Service Unavailable";
	case 504:
		return "Gateway Timeout";
	case 505:
		return "HTTP Version Not Supported";
	default:
		return "Status";
	}
}

void sbcb_respond(int fd, int status, const char *headers, const void *body, size_t len,
                  bool head_only)
{
	sb_buf b = SB_BUF_INIT;
	char line[256];
	snprintf(line, sizeof line,
	         "HTTP/1.1 %d %s\r\nContent-Length: %zu\r\nConnection: close\r\n", status,
	         reason(status), len);
	sb_buf_appends(&b, line);
	if (headers)
		sb_buf_appends(&b, headers);
	sb_buf_appends(&b, "\r\n");
	if (!head_only && len)
		sb_buf_append(&b, body, len);
	size_t off = 0;
	while (off < b.len) {
		ssize_t n = send(fd, b.data + off, b.len - off, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		off += (size_t)n;
	}
	shutdown(fd, SHUT_WR);
	sb_buf_deinit(&b);
}

void sbcb_respond_json(int fd, int status, const char *json)
{
	sbcb_respond(fd, status, "Content-Type: application/json\r\n", json, strlen(json), false);
}

void sbcb_respond_error(int fd, int status, const char *msg, bool retryable)
{
	json_t *j = json_object();
	json_object_set_new(j, "error", json_string(msg));
	if (status == 503 || status == 502)
		json_object_set_new(j, "retryable", json_boolean(retryable));
	char *s = sb_json_dumps(j);
	json_decref(j);
	sbcb_respond_json(fd, status, s);
	free(s);
}

void sbcb_respond_indeterminate(int fd)
{
	sbcb_respond_json(
	    fd, 409,
	    "{\"error\":\"The outcome of this request is unknown: it may have been "
	    "applied upstream. Check before retrying.\",\"outcome\":\"indeterminate\","
	    "\"retryable\":false}");
}
