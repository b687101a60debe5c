# Reference values from R's survival package for tests/test_survival.py.
#
# Usage (from the project root):
#   Rscript tests/r_reference/survival_reference.R INPUT.csv SPEC.json OUTPUT.json
# e.g.
#   Rscript tests/r_reference/survival_reference.R tests/fixtures/survival_small.csv \
#       tests/r_reference/survival_small_spec.json tests/fixtures/survival_small_R.json
#
# SPEC.json names the analyses to run (see README.md beside this file). Every number is written
# with full precision (jsonlite digits = NA); Inf is written as the string "Inf", NA as "NA".
# Needs Debian's r-base-core, r-cran-survival and r-cran-jsonlite (R 4.2, survival 3.5).
suppressPackageStartupMessages({
  library(survival)
  library(jsonlite)
})

args <- commandArgs(trailingOnly = TRUE)
if (length(args) != 3) stop("usage: survival_reference.R INPUT.csv SPEC.json OUTPUT.json")
dat <- read.csv(args[1], stringsAsFactors = FALSE)
spec <- fromJSON(args[2], simplifyVector = TRUE)

surv_of <- function(d, a) Surv(d[[a$time]], d[[a$event]])

km_one <- function(d, a, times) {
  # Kaplan-Meier with log-log CIs (conf.type = "log-log": lifelines' exponential Greenwood) unless
  # the spec item sets conf_type (e.g. "log", R's default).
  ct <- if (is.null(a$conf_type)) "log-log" else a$conf_type
  fit <- survfit(surv_of(d, a) ~ 1, conf.type = ct)
  q <- quantile(fit, probs = 0.5)
  times <- times[times <= max(d[[a$time]])]  # extend = FALSE drops later times; none left is an error
  s <- if (length(times)) summary(fit, times = times, extend = FALSE) else
    list(time = numeric(0), surv = numeric(0), lower = numeric(0), upper = numeric(0), n.risk = numeric(0))
  list(
    n = nrow(d), events = sum(d[[a$event]]),
    steps = data.frame(time = fit$time, n_risk = fit$n.risk, n_event = fit$n.event,
                       n_censor = fit$n.censor, surv = fit$surv, std_err = fit$std.err,
                       ci_low = fit$lower, ci_high = fit$upper),
    median = list(estimate = unname(q$quantile), ci_low = unname(q$lower), ci_high = unname(q$upper)),
    at_times = data.frame(time = s$time, surv = s$surv, ci_low = s$lower, ci_high = s$upper,
                          n_risk = s$n.risk)
  )
}

run_km <- function(a) {
  d <- dat[!is.na(dat[[a$time]]) & !is.na(dat[[a$event]]), ]
  times <- if (is.null(a$times)) c(365, 730) else a$times
  if (is.null(a$group)) return(list(all = km_one(d, a, times)))
  levs <- sort(unique(d[[a$group]]))
  setNames(lapply(levs, function(g) km_one(d[d[[a$group]] == g, ], a, times)), levs)
}

run_reverse_km <- function(a) {
  # Reverse Kaplan-Meier (Schemper & Smith 1996): censoring is the "event".
  d <- dat[!is.na(dat[[a$time]]), ]
  fit <- survfit(Surv(d[[a$time]], 1 - d[[a$event]]) ~ 1, conf.type = "log-log")
  q <- quantile(fit, probs = 0.5)
  list(median = unname(q$quantile), ci_low = unname(q$lower), ci_high = unname(q$upper))
}

run_logrank <- function(a) {
  d <- dat
  sd <- survdiff(surv_of(d, a) ~ d[[a$group]])
  list(chisq = unname(sd$chisq), df = length(sd$n) - 1L,
       p_value = pchisq(sd$chisq, length(sd$n) - 1L, lower.tail = FALSE),
       observed = unname(sd$obs), expected = unname(sd$exp))
}

gt1994_zph <- function(fit, d, a) {
  # Grambsch & Therneau (1994) approximate test as in survival < 3.0 and lifelines:
  # T_j = (sum g_k r_kj)^2 / (D var_jj sum g_k^2), r = unscaled Schoenfeld residuals, D deaths,
  # g = centred transformed event time; 'km' uses 1 - KM(t) (right-continuous, as lifelines).
  sres <- as.matrix(resid(fit, type = "schoenfeld"))
  tt <- d[[a$time]][d[[a$event]] == 1]
  tt <- sort(tt)
  km <- survfit(surv_of(d, a) ~ 1)
  g_km <- 1 - km$surv[match(tt, km$time)]
  out <- list()
  for (tr in c("km", "rank")) {
    g <- if (tr == "km") g_km else rank(tt)
    g <- g - mean(g)
    D <- nrow(sres)
    u <- colSums(g * sres)
    scaled <- (sres %*% fit$var) * D
    stat <- (colSums(g * scaled))^2 / (D * diag(fit$var) * sum(g^2))
    glob <- c(t(u) %*% fit$var %*% u) * D / sum(g^2)
    out[[tr]] <- list(term = c(names(fit$coefficients), "GLOBAL"), statistic = c(unname(stat), glob),
                      p_value = c(pchisq(stat, 1, lower.tail = FALSE),
                                  pchisq(glob, ncol(sres), lower.tail = FALSE)))
  }
  out
}

run_cox <- function(a) {
  vars <- a$covariates
  d <- dat[complete.cases(dat[, c(a$time, a$event, vars, a$strata)]), ]
  rhs <- paste(c(vars, if (!is.null(a$strata)) paste0("strata(", a$strata, ")")), collapse = " + ")
  f <- as.formula(paste("Surv(", a$time, ",", a$event, ") ~", rhs))
  fit <- coxph(f, data = d, ties = "efron", control = coxph.control(eps = 1e-10, iter.max = 50))
  zph <- cox.zph(fit, transform = "km")
  zr <- cox.zph(fit, transform = "rank")
  list(
    n = fit$n, events = fit$nevent, term = names(fit$coefficients),
    coef = unname(fit$coefficients), se = unname(sqrt(diag(fit$var))),
    p_value = unname(summary(fit)$coefficients[, "Pr(>|z|)"]),
    loglik = fit$loglik, concordance = unname(fit$concordance["concordance"]),
    zph_km = list(term = rownames(zph$table), statistic = unname(zph$table[, "chisq"]),
                  p_value = unname(zph$table[, "p"])),
    zph_rank = list(term = rownames(zr$table), statistic = unname(zr$table[, "chisq"]),
                    p_value = unname(zr$table[, "p"])),
    zph_gt1994 = gt1994_zph(fit, d, a),
    scaledsch = list(time = as.numeric(rownames(as.matrix(resid(fit, type = "scaledsch")))),
                     value = unname(as.matrix(resid(fit, type = "scaledsch"))))
  )
}

run_tv_cox <- function(a) {
  # Time-varying binary covariate switching 0 -> 1 at covariate_day, built by tmerge().
  d <- dat[, c(a$id, a$time, a$event, a$covariate_day, a$other)]
  d$.id <- seq_len(nrow(d))
  base <- tmerge(d, d, id = .id, .event = event(d[[a$time]], d[[a$event]]))
  cp <- tmerge(base, d, id = .id, .tv = tdc(d[[a$covariate_day]]))
  cp$.tv[is.na(cp$.tv)] <- 0
  f <- as.formula(paste("Surv(tstart, tstop, .event) ~", paste(c(".tv", a$other), collapse = " + ")))
  fit <- coxph(f, data = cp, ties = "efron", control = coxph.control(eps = 1e-10, iter.max = 50))
  list(term = c(a$covariate, a$other), coef = unname(fit$coefficients),
       se = unname(sqrt(diag(fit$var))),
       rows = data.frame(id = cp[[a$id]], start = cp$tstart, stop = cp$tstop, event = cp$.event,
                         value = cp$.tv))
}

run_cif <- function(a) {
  # Aalen-Johansen cumulative incidence by survfit() with a factor status (multi-state).
  d <- dat
  st <- factor(d[[a$event_type]], levels = sort(unique(d[[a$event_type]])))
  fit <- survfit(Surv(d[[a$time]], st) ~ 1)
  s <- summary(fit, times = a$times, extend = FALSE)
  states <- fit$states
  res <- list(times = s$time)
  for (k in setdiff(states, states[1])) res[[paste0("cause_", k)]] <- unname(s$pstate[, match(k, states)])
  res
}

run_firth <- function(a) {
  # Firth-penalised Cox (Heinze & Schemper 2001), Breslow ties as in firthmodels and coxphf:
  # maximise l(b) + 0.5 log|I(b)| using coxph's log-likelihood and information at fixed b.
  vars <- a$covariates
  d <- dat[complete.cases(dat[, c(a$time, a$event, vars)]), ]
  X <- as.matrix(d[, vars, drop = FALSE])
  y <- surv_of(d, a)
  pen <- function(b, free = seq_along(b), fixed = b) {
    full <- fixed
    full[free] <- b[free]
    fit <- coxph(y ~ X, ties = "breslow", init = full, control = coxph.control(iter.max = 0))
    fit$loglik[2] + 0.5 * as.numeric(determinant(solve(fit$var), logarithm = TRUE)$modulus)
  }
  opt <- optim(rep(0, length(vars)), function(b) -pen(b), method = "BFGS",
               control = list(reltol = 1e-15, maxit = 1000))
  opt <- optim(opt$par, function(b) -pen(b), method = "Nelder-Mead",
               control = list(reltol = 1e-15, maxit = 5000))
  lrt_p <- sapply(seq_along(vars), function(j) {
    if (length(vars) == 1) {
      l0 <- pen(0)
    } else {
      r <- optim(opt$par[-j], function(b) { bb <- opt$par; bb[j] <- 0; bb[-j] <- b; -pen(bb) },
                 method = "BFGS", control = list(reltol = 1e-15, maxit = 1000))
      l0 <- -r$value
    }
    pchisq(2 * (-opt$value - l0), 1, lower.tail = FALSE)
  })
  list(term = vars, coef = opt$par, lrt_p_value = lrt_p, penalised_loglik = -opt$value)
}

runners <- list(km = run_km, reverse_km = run_reverse_km, logrank = run_logrank, cox = run_cox,
                tv_cox = run_tv_cox, cif = run_cif, firth = run_firth)
out <- list(meta = list(r_version = R.version.string,
                        survival_version = as.character(packageVersion("survival")),
                        input = basename(args[1]), spec = basename(args[2])))
for (kind in names(runners)) {
  if (is.null(spec[[kind]])) next
  items <- spec[[kind]]
  out[[kind]] <- list()
  for (i in seq_len(nrow(items))) {
    a <- as.list(items[i, , drop = FALSE])
    a <- lapply(a, function(v) if (is.list(v)) v[[1]] else v)
    a <- a[!vapply(a, function(v) length(v) == 1 && is.na(v), logical(1))]
    out[[kind]][[a$name]] <- runners[[kind]](a)
  }
}
writeLines(toJSON(out, digits = NA, auto_unbox = TRUE, na = "string", dataframe = "columns",
                  pretty = TRUE), args[3])
