/*
 * ctl.h -- the control socket: a Unix stream socket (mode 0600) on which the
 * master takes one-line commands (status, reload, stop, stop graceful) and
 * answers with text, so that `luaserv app.lua reload` can wait for the outcome.
 */
#ifndef LS_CTL_H
#define LS_CTL_H

#include <stddef.h>

int ls_ctl_listen(const char *path, char *err, size_t errlen);
int ls_ctl_request(const char *path, const char *cmd, char *reply,
                   size_t replylen, double timeout);

#define LS_CTL_NOSERVER -1 /* nobody listens at path */
#define LS_CTL_FAILED -2

#endif
