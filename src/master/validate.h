/*
 * validate.h -- run APP.lua in a throwaway child to learn what it declares.
 */
#ifndef LS_VALIDATE_H
#define LS_VALIDATE_H

#include "core/config.h"

#define LS_VALIDATE_TIMEOUT 30.0

int ls_validate(const char *app, ls_conf_t *conf, char *err, size_t errlen);
void ls_validate_set_child_hook(void (*hook)(void));

#endif
