# Reference values for helpers.survival's time-varying and landmark Cox models on a hand-built data set in
# which several responders are documented in remission after the day-28 landmark (days 35 and 42).
# Run from the project root:
#   Rscript tests/r_reference/landmark_reference.R
# Writes tests/r_reference/landmark_small_R.json (R 4.2.2, survival 3.5.3, jsonlite 1.8.4).
suppressPackageStartupMessages({library(survival); library(jsonlite)})
d <- read.csv("tests/r_reference/landmark_small.csv")
num <- function(x) signif(unname(x), 15)
fit_row <- function(fit, n) {
  s <- summary(fit)
  list(coef = num(coef(fit)), se = num(sqrt(diag(vcov(fit)))), hr = num(exp(coef(fit))),
       ci_low = num(s$conf.int[, "lower .95"]), ci_high = num(s$conf.int[, "upper .95"]),
       p = num(s$coefficients[, "Pr(>|z|)"]), n = n, events = fit$nevent)
}
# time-varying: remission switches on the day it was documented (tmerge + tdc)
tv <- tmerge(d[, c("id", "time", "status")], d, id = id, event = event(time, status), rem = tdc(rem_day))
tv_fit <- coxph(Surv(tstart, tstop, event) ~ rem, data = tv, ties = "efron")
out <- list(time_varying = fit_row(tv_fit, nrow(d)),
            counting_rows = list(id = tv$id, tstart = tv$tstart, tstop = tv$tstop, event = tv$event, rem = tv$rem))
# landmark at L: patients with time > L; remission as known at L; time from L
lm <- list()
for (L in c(21, 28, 35, 42, 60)) {
  s <- d[d$time > L, ]
  s$rem_by <- as.integer(!is.na(s$rem_day) & s$rem_day <= L)
  s$t_lm <- s$time - L
  fit <- coxph(Surv(t_lm, status) ~ rem_by, data = s, ties = "efron")
  lr <- survdiff(Surv(t_lm, status) ~ rem_by, data = s)
  row <- fit_row(fit, nrow(s))
  row$logrank_p <- num(pchisq(lr$chisq, 1, lower.tail = FALSE))
  row$late <- sum(!is.na(s$rem_day) & s$rem_day > L)
  lm[[as.character(L)]] <- row
}
out$landmark <- lm
out$versions <- list(R = R.version.string, survival = as.character(packageVersion("survival")))
writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, pretty = TRUE), "tests/r_reference/landmark_small_R.json")
