# Hidden-unit correlation matrices as heatmaps, one panel per scheme.
#
# pnd sets, besides term and out (see styles.gp):
#   n                  number of panels
#   dI, tI             data file and title of panel I: a square matrix,
#                      one row per line, values in [-1, 1]
#   cblabel            colour-bar label

n = int(n)
ncols = (n < 4 ? n : (n <= 4 ? 2 : (n <= 6 ? 3 : 4)))
nrows = int(ceil(real(n) / ncols))
if (!exists("fig_w")) fig_w = 0.55 * ncols
if (!exists("fig_h")) fig_h = 0.75 * nrows
load pnd_data_dir.'/styles.gp'

unset grid
unset key
set border 15
set tics nomirror in
set size ratio -1
set autoscale xfix
set autoscale yfix
set palette defined (-1 '#2166AC', 0 '#F7F7F7', 1 '#B2182B')
set cbrange [-1:1]
set cblabel (exists("cblabel") ? cblabel : 'Pearson correlation')
set xlabel 'unit'
set ylabel 'unit'

set multiplot layout nrows, ncols
do for [i=1:n] {
    set title value(sprintf('t%d', i))
    plot value(sprintf('d%d', i)) matrix with image
}
unset multiplot
