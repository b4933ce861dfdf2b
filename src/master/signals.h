/*
 * signals.h -- the master's signal path: handlers only record, the loop acts.
 */
#ifndef LS_SIGNALS_H
#define LS_SIGNALS_H

#include <signal.h>

int ls_signals_install(void);      /* master handlers + self-pipe; -1 on error */
int ls_signals_fd(void);           /* read end of the self-pipe, for poll() */
int ls_signals_next(void);         /* next recorded signal, or 0 */
void ls_signals_reset_child(void); /* after fork: default dispositions */
const char *ls_signals_name(int signo);
void ls_signals_block(sigset_t *old);
void ls_signals_restore(const sigset_t *old);

#endif
