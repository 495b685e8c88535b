module booty.bench/bootygo

go 1.19
