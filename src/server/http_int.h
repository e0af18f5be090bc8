/* Private to http.c and server.c: the MHD callbacks that drive a request through auth, body
 * reading and dispatch, and the request object itself. Route files use http.h only. */
#ifndef SB_SERVER_HTTP_INT_H
#define SB_SERVER_HTTP_INT_H

#include <microhttpd.h>

#include "server_int.h"

/* MHD_OPTION_URI_LOG_CALLBACK: allocates the request with the raw target. */
void *sbs_http_uri_log(void *cls, const char *uri, struct MHD_Connection *conn);
/* The MHD access handler (cls = sbs_server). */
enum MHD_Result sbs_http_access(void *cls, struct MHD_Connection *conn, const char *url,
                                const char *method, const char *version, const char *upload_data,
                                size_t *upload_data_size, void **con_cls);
/* MHD_OPTION_NOTIFY_COMPLETED. */
void sbs_http_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                        enum MHD_RequestTerminationCode toe);
/* Requests started and not yet completed (for draining). */
long sbs_http_inflight(sbs_server *srv);

#endif
